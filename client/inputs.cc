#include "client/inputs.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "client/json_tensor.h"
#include "client/npy.h"
#include "client/text_grid.h"

namespace gradserve::client {

namespace {

// A word that is not numbers and reads as a file name: it has a '/' or ends in ".ext" with a
// letter after the dot ("z.txt"; "1.e5" is a number and never gets here, "1,x" has no dot).
bool LooksLikeAPath(absl::string_view arg) {
  if (absl::StrContains(arg, "/")) return true;
  const size_t dot = arg.rfind('.');
  if (dot == absl::string_view::npos || dot + 1 >= arg.size() || !absl::ascii_isalpha(arg[dot + 1])) return false;
  for (char c : arg.substr(dot + 1)) {
    if (!absl::ascii_isalnum(c)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  // Sized once from the file's length: a stream's growing buffer copies (and, for a big .npy,
  // faults in) the bytes several times over. Anything that is not a regular file (a pipe) is
  // read to its end.
  std::string contents;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (size > 0) {
    contents.resize(static_cast<size_t>(size));
    in.read(contents.data(), size);
    if (in.gcount() != size) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
    in.peek();  // a file that grew since: read the rest below
  } else {
    in.clear();
  }
  if (!in.eof()) {
    std::ostringstream rest;
    rest << in.rdbuf();
    contents += rest.str();
  }
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  return contents;
}

absl::StatusOr<HostTensor> ReadTensorArg(absl::string_view flag, const std::string& arg) {
  const std::string lower = absl::AsciiStrToLower(arg);
  for (absl::string_view ext : {".csv", ".json", ".npy"}) {
    if (!absl::EndsWith(lower, ext)) continue;
    GRADSERVE_ASSIGN_OR_RETURN(std::string contents, ReadWholeFile(arg));
    if (ext == ".csv") return ParseCsvGrid(arg, contents);
    if (ext == ".json") return ParseJsonTensor(arg, contents);
    return ParseNpy(arg, contents);
  }
  absl::StatusOr<HostTensor> inline_tensor = ParseInlineGrid(flag, arg);
  if (inline_tensor.ok()) return inline_tensor;
  if (std::ifstream(arg).good()) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " ", arg, ": a file of unknown type; the known extensions are .csv, .json and .npy"
        " (name it by its format)"));
  }
  if (LooksLikeAPath(arg)) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " ", arg, ": no such file (give inline numbers like 1,2;3,4 or a .csv, .json or .npy file)"));
  }
  return inline_tensor;
}

absl::StatusOr<std::vector<int64_t>> ToClassIndices(absl::string_view flag, const HostTensor& t) {
  const bool column = t.shape.size() == 2 && t.shape[1] == 1;
  if (t.shape.size() > 1 && !column) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": class indices are one per row, got shape ",
                                                   ShapeString(t.shape)));
  }
  std::vector<int64_t> out;
  out.reserve(t.values.size());
  for (size_t i = 0; i < t.values.size(); ++i) {
    const double v = t.values[i];
    // 2^62 keeps the cast exact and defined; real class ids are far below it.
    if (!(v == std::floor(v) && std::fabs(v) < 4.6e18)) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": value ", i, " (", v, ") is not an integer class index"));
    }
    out.push_back(static_cast<int64_t>(v));
  }
  return out;
}

HostTensor FitToShape(HostTensor t, const std::vector<int64_t>& want) {
  if (t.shape.size() != want.size() && static_cast<int64_t>(t.values.size()) == ElementCount(want)) {
    t.shape = want;
  }
  return t;
}

}  // namespace gradserve::client
