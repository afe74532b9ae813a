#include "client/row_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "client/inputs.h"

namespace gradserve::client {
namespace {

absl::Status ReadAt(int fd, const std::string& path, uint64_t offset, size_t size, char* out) {
  while (size > 0) {
    const ssize_t n = pread(fd, out, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": ",
                                                     n < 0 ? std::strerror(errno) : "the file got shorter"));
    }
    out += n;
    offset += n;
    size -= n;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RowSource> RowSource::Open(absl::string_view flag, const std::string& arg) {
  RowSource src;
  src.path_ = arg;
  if (absl::EndsWith(absl::AsciiStrToLower(arg), ".npy")) {
    const int fd = open(arg.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::InvalidArgumentError(absl::StrCat("cannot read ", arg, ": ", std::strerror(errno)));
    auto owned = std::shared_ptr<const int>(new int(fd), [](const int* p) {
      close(*p);
      delete p;
    });
    struct stat st;
    if (fstat(fd, &st) != 0) return absl::InvalidArgumentError(absl::StrCat("cannot stat ", arg));
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    std::string head(std::min<uint64_t>(size, 12), '\0');
    GRADSERVE_RETURN_IF_ERROR(ReadAt(fd, arg, 0, head.size(), head.data()));
    const uint64_t header = NpyHeaderLength(head);
    if (header > 12 && header <= size && header < (64u << 20)) {
      head.resize(header);
      GRADSERVE_RETURN_IF_ERROR(ReadAt(fd, arg, 0, header, head.data()));
    }
    GRADSERVE_ASSIGN_OR_RETURN(src.layout_, ParseNpyLayout(arg, head, size));
    if (!src.layout_.fortran_order || src.layout_.shape.size() < 2) {
      src.fd_ = std::move(owned);
      src.shape_ = src.layout_.shape;
      src.dtype_ = src.layout_.dtype;
      return src;
    }
  }
  GRADSERVE_ASSIGN_OR_RETURN(HostTensor t, ReadTensorArg(flag, arg));
  src.shape_ = t.shape;
  src.dtype_ = t.dtype;
  src.whole_ = std::make_shared<const HostTensor>(std::move(t));
  return src;
}

absl::Status RowSource::Read(int64_t begin, int64_t count, TensorFormat format, gradserve::v1::Tensor* out) const {
  const int64_t columns = shape_.size() == 2 ? shape_[1] : 0;
  const size_t n = static_cast<size_t>(count * columns);
  out->Clear();
  out->add_shape(count);
  out->add_shape(columns);
  out->set_dtype(format.dtype);
  const bool raw = format.encoding == Encoding::kRaw;
  std::vector<double> values;
  if (whole_ != nullptr) {
    values.assign(whole_->values.begin() + begin * columns, whole_->values.begin() + begin * columns + n);
  } else {
    const uint64_t offset = layout_.data_offset + static_cast<uint64_t>(begin * columns) * layout_.item_size;
    // The file already holds the wire's bytes: read them into the request, no conversion.
    if (raw && layout_.kind == 'f' && layout_.byte_order != '>' && layout_.dtype == format.dtype) {
      std::string* bytes = out->mutable_raw();
      bytes->resize(n * layout_.item_size);
      return ReadAt(*fd_, path_, offset, bytes->size(), bytes->data());
    }
    std::string bytes(n * layout_.item_size, '\0');
    GRADSERVE_RETURN_IF_ERROR(ReadAt(*fd_, path_, offset, bytes.size(), bytes.data()));
    values.resize(n);
    DecodeNpyElements(layout_, bytes.data(), n, values.data());
  }
  if (!raw) {
    out->mutable_values()->Add(values.begin(), values.end());
    return absl::OkStatus();
  }
  std::string* bytes = out->mutable_raw();
  bytes->resize(n * ItemSize(format.dtype));
  EncodeRawValues(values.data(), n, format.dtype, bytes->data());
  return absl::OkStatus();
}

}  // namespace gradserve::client
