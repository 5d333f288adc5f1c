// What the public handles of anychip.hpp hold. Internal to runtime/.
#pragma once

#include <memory>

#include "anychip/anychip.hpp"
#include "backends/backend.hpp"

namespace anychip::detail {

struct DeviceImpl {
  std::unique_ptr<backends::Device> device;
};

struct BufferImpl {
  std::shared_ptr<DeviceImpl> device;  // keeps the device alive while the buffer is
  std::unique_ptr<backends::Buffer> buffer;
};

struct StreamImpl {
  std::shared_ptr<DeviceImpl> device;
  std::unique_ptr<backends::Queue> queue;
};

struct EventImpl {
  std::shared_ptr<DeviceImpl> device;
  std::unique_ptr<backends::Event> event;
};

}  // namespace anychip::detail
