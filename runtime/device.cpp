// Devices, buffers, tensors, streams and events of the public API, over the backends.
#include "runtime/handles.hpp"

namespace anychip {

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> all;
  for (backends::Backend* b : backends::all_backends())
    for (DeviceInfo& d : b->enumerate()) all.push_back(std::move(d));
  return all;
}

Device Device::open(std::string_view id, const DeviceOptions& options) {
  const std::string_view prefix = id.substr(0, id.find(':'));
  std::string known;
  for (backends::Backend* b : backends::all_backends()) {
    if (b->name() == prefix) {
      for (const DeviceInfo& d : b->enumerate())
        if (d.id == id && !d.available)
          throw Error(ErrorCode::Unavailable, "device " + d.id + " is unavailable: " + d.unavailable_reason);
      auto impl = std::make_shared<detail::DeviceImpl>();
      impl->device = b->open(id, options);
      return Device(std::move(impl));
    }
    known += (known.empty() ? "" : ", ") + std::string(b->name());
  }
  throw Error(ErrorCode::InvalidArgument,
              "unknown device '" + std::string(id) + "' (backends in this build: " + known + ")");
}

const DeviceInfo& Device::info() const { return impl_->device->info(); }

Stream Device::create_stream() const { return Stream(*this); }

std::string Device::take_trace() const { return impl_->device->take_trace(); }

Buffer Device::allocate(std::size_t bytes) const {
  auto b = std::make_shared<detail::BufferImpl>();
  b->device = impl_;
  b->buffer = impl_->device->allocate(bytes == 0 ? 1 : bytes);
  return Buffer(std::move(b));
}

Tensor Device::allocate(const TensorType& type) const {
  std::optional<Buffer> scales;
  if (type.scale) scales = allocate(type.scale_bytes());
  return Tensor(type, allocate(type.data_bytes()), std::move(scales));
}

Tensor Device::upload(const HostTensor& host, Stream& stream) const {
  if (host.data.size() != host.type.data_bytes() || host.scales.size() != host.type.scale_bytes())
    throw Error(ErrorCode::InvalidArgument,
                "upload: host tensor of type " + host.type.str() + " holds " +
                    std::to_string(host.data.size()) + " data and " + std::to_string(host.scales.size()) +
                    " scale bytes; its type needs " + std::to_string(host.type.data_bytes()) + " and " +
                    std::to_string(host.type.scale_bytes()));
  Tensor t = allocate(host.type);
  t.data().write(stream, host.data.data(), host.data.size());
  if (t.scales()) t.scales()->write(stream, host.scales.data(), host.scales.size());
  stream.synchronize();
  return t;
}

std::size_t Buffer::size() const { return impl_->buffer->size(); }

// A backend casts the queue and buffer to its own types: both must be of one device.
static void require_same_device(const detail::BufferImpl& b, const Stream& stream, const char* what) {
  if (stream.impl()->device != b.device)
    throw Error(ErrorCode::InvalidArgument,
                std::string(what) + ": the stream belongs to another device than the buffer");
}

void Buffer::write(Stream& stream, const void* src, std::size_t bytes, std::size_t offset) const {
  require_same_device(*impl_, stream, "Buffer::write");
  impl_->device->device->write(*stream.impl()->queue, *impl_->buffer, offset, src, bytes);
}

void Buffer::read(Stream& stream, void* dst, std::size_t bytes, std::size_t offset) const {
  require_same_device(*impl_, stream, "Buffer::read");
  impl_->device->device->read(*stream.impl()->queue, *impl_->buffer, offset, dst, bytes);
}

Tensor::Tensor(TensorType type, Buffer data, std::optional<Buffer> scales)
    : type_(std::move(type)), data_(std::move(data)), scales_(std::move(scales)) {
  if (data_.size() < type_.data_bytes())
    throw Error(ErrorCode::InvalidArgument, "tensor " + type_.str() + ": data buffer of " +
                                                std::to_string(data_.size()) + " bytes is too small");
  if (type_.scale && (!scales_ || scales_->size() < type_.scale_bytes()))
    throw Error(ErrorCode::InvalidArgument,
                "tensor " + type_.str() + ": needs a scale buffer of " + std::to_string(type_.scale_bytes()) + " bytes");
}

HostTensor Tensor::download(Stream& stream) const {
  HostTensor h(type_);
  data_.read(stream, h.data.data(), h.data.size());
  if (scales_ && type_.scale) scales_->read(stream, h.scales.data(), h.scales.size());
  stream.synchronize();
  return h;
}

Stream::Stream(const Device& device) : device_(device), impl_(std::make_shared<detail::StreamImpl>()) {
  impl_->device = device.impl_;
  impl_->queue = device.impl_->device->create_queue();
}

void Stream::synchronize() { impl_->device->device->synchronize(*impl_->queue); }

Event Stream::record() {
  auto e = std::make_shared<detail::EventImpl>();
  e->device = impl_->device;
  e->event = impl_->device->device->record(*impl_->queue);
  return Event(std::move(e));
}

double Event::seconds_since(const Event& start) const {
  return impl_->device->device->elapsed_seconds(*start.impl_->event, *impl_->event);
}

}  // namespace anychip
