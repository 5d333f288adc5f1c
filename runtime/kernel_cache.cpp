#include "runtime/kernel_cache.hpp"

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <system_error>

#include <xxhash.h>

namespace anychip::rt {
namespace {

constexpr char kMagic[8] = {'A', 'C', 'K', 'E', 'R', 'N', 'E', 'L'};
constexpr std::uint32_t kFormatVersion = 1;

struct Header {
  char magic[8];
  std::uint32_t version;
  std::uint32_t reserved;
  std::uint64_t payload_bytes;
  std::uint64_t payload_hash;
};
static_assert(sizeof(Header) == 32);

std::string hex(std::uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = digits[v & 15];
  return s;
}

}  // namespace

KernelCache::KernelCache(std::filesystem::path dir) : dir_(std::move(dir)) {}

std::filesystem::path KernelCache::default_dir() {
  if (const char* d = std::getenv("ANYCHIP_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return std::filesystem::path(x) / "anychip" / "kernels";
  if (const char* h = std::getenv("HOME"); h && *h)
    return std::filesystem::path(h) / ".cache" / "anychip" / "kernels";
  return std::filesystem::temp_directory_path() / "anychip-kernels";
}

std::string KernelCache::key(std::initializer_list<std::string_view> parts) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  for (std::string_view p : parts) {
    std::uint64_t n = p.size();
    XXH3_128bits_update(state, &n, sizeof n);
    XXH3_128bits_update(state, p.data(), p.size());
  }
  XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  return hex(h.high64) + hex(h.low64);
}

std::filesystem::path KernelCache::path_of(const std::string& key) const {
  return dir_ / (key + ".kernel");
}

std::optional<std::vector<std::byte>> KernelCache::load(const std::string& key) {
  const auto path = path_of(key);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ++misses_;
    return std::nullopt;
  }
  Header h{};
  std::vector<std::byte> payload;
  bool ok = static_cast<bool>(in.read(reinterpret_cast<char*>(&h), sizeof h)) &&
            std::memcmp(h.magic, kMagic, sizeof kMagic) == 0 && h.version == kFormatVersion &&
            h.payload_bytes < (std::uint64_t{1} << 34);
  if (ok) {
    payload.resize(h.payload_bytes);
    ok = static_cast<bool>(in.read(reinterpret_cast<char*>(payload.data()),
                                   static_cast<std::streamsize>(payload.size()))) &&
         in.peek() == std::ifstream::traits_type::eof() &&
         XXH3_64bits(payload.data(), payload.size()) == h.payload_hash;
  }
  if (!ok) {
    ++corrupt_;
    ++misses_;
    std::error_code ec;
    std::filesystem::remove(path, ec);
    return std::nullopt;
  }
  ++hits_;
  return payload;
}

bool KernelCache::store(const std::string& key, std::span<const std::byte> payload) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const auto tmp = dir_ / (key + ".tmp." + std::to_string(::getpid()) + "." + hex(rng()));
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kFormatVersion;
  h.payload_bytes = payload.size();
  h.payload_hash = XXH3_64bits(payload.data(), payload.size());
  bool ok;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    ok = out && out.write(reinterpret_cast<const char*>(&h), sizeof h) &&
         out.write(reinterpret_cast<const char*>(payload.data()),
                   static_cast<std::streamsize>(payload.size())) &&
         out.flush();
  }
  if (ok) {
    std::filesystem::rename(tmp, path_of(key), ec);
    ok = !ec;
  }
  if (!ok) {
    std::filesystem::remove(tmp, ec);
    ++write_failures_;
  }
  return ok;
}

void KernelCache::remove(const std::string& key) {
  std::error_code ec;
  std::filesystem::remove(path_of(key), ec);
}

KernelCache::Stats KernelCache::stats() const {
  return {hits_.load(), misses_.load(), corrupt_.load(), write_failures_.load()};
}

}  // namespace anychip::rt
