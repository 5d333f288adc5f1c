// The content-addressed on-disk kernel cache.
//
// key = 128-bit XXH3 of (spec, kernel source, compiler id, anychip version); one file per
// entry, <dir>/<key>.kernel, holding a header (magic, format version, payload size,
// payload hash) and the payload. Writes go to a temporary file in the same directory and
// are renamed into place, so readers never see a half-written entry and concurrent
// writers of one key (threads or processes) are harmless. An entry whose header or hash
// does not match is corrupt: load() removes it and reports a miss, and the caller rebuilds.
// A cache that cannot be written (read-only disk) slows compiles down but never fails them.
#pragma once

#include <atomic>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace anychip::rt {

class KernelCache {
 public:
  explicit KernelCache(std::filesystem::path dir);

  // $ANYCHIP_CACHE_DIR, else $XDG_CACHE_HOME/anychip/kernels, else ~/.cache/anychip/kernels.
  static std::filesystem::path default_dir();

  // The key of a list of parts (length-prefixed, so no two lists collide by concatenation).
  static std::string key(std::initializer_list<std::string_view> parts);

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path path_of(const std::string& key) const;

  // The payload stored under `key`; nullopt when there is none or it was corrupt.
  std::optional<std::vector<std::byte>> load(const std::string& key);

  // Stores `payload` under `key` atomically. Returns false (and counts a write failure)
  // when the cache directory cannot be written.
  bool store(const std::string& key, std::span<const std::byte> payload);

  // Removes the entry, if any (e.g. when the backend rejects a binary it loaded).
  void remove(const std::string& key);

  struct Stats {
    std::size_t hits = 0, misses = 0, corrupt = 0, write_failures = 0;
  };
  Stats stats() const;

 private:
  std::filesystem::path dir_;
  std::atomic<std::size_t> hits_{0}, misses_{0}, corrupt_{0}, write_failures_{0};
};

}  // namespace anychip::rt
