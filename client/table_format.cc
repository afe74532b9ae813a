#include "client/table_format.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace gradserve::client {
namespace {

constexpr int64_t kElided = -1;
constexpr absl::string_view kEllipsis = "…";

// The indices of an axis of length `n` to show, with kElided where the middle is left out.
std::vector<int64_t> Shown(int64_t n, int max) {
  std::vector<int64_t> out;
  if (n <= max) {
    for (int64_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  const int64_t half = std::max(1, max / 2);
  for (int64_t i = 0; i < half; ++i) out.push_back(i);
  out.push_back(kElided);
  for (int64_t i = n - half; i < n; ++i) out.push_back(i);
  return out;
}

// Display width: the ellipsis is three bytes but one column.
size_t Width(absl::string_view s) { return s == kEllipsis ? 1 : s.size(); }

// Renders `cells` (first column: labels, left-aligned; the rest right-aligned) with two spaces
// of indent and at least one space between columns.
std::string Render(const std::vector<std::vector<std::string>>& cells) {
  std::vector<size_t> widths;
  for (const auto& row : cells) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], Width(row[c]));
  }
  std::string out;
  for (const auto& row : cells) {
    std::string line = "  ";
    for (size_t c = 0; c < row.size(); ++c) {
      const std::string pad(widths[c] - Width(row[c]), ' ');
      if (c == 0) {
        absl::StrAppend(&line, row[c], pad);
      } else {
        absl::StrAppend(&line, "  ", pad, row[c]);
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string Label(const std::vector<std::string>& axes, size_t axis, int64_t index) {
  if (index == kElided) return std::string(kEllipsis);
  return absl::StrCat(axis < axes.size() ? axes[axis] : "dim", " ", index);
}

// The last two axes of a slice starting at `offset`: rows × columns (rows = 1 for rank 1).
std::string Grid(const HostTensor& t, int64_t offset, int64_t rows, int64_t columns,
                 const std::vector<std::string>& axes, size_t row_axis, bool row_labels,
                 const TableStyle& style) {
  std::vector<std::vector<std::string>> cells;
  const std::vector<int64_t> shown_columns = Shown(columns, style.max_columns);
  std::vector<std::string> header{""};
  for (int64_t c : shown_columns) header.push_back(Label(axes, row_axis + (row_labels ? 1 : 0), c));
  cells.push_back(header);
  for (int64_t r : row_labels ? Shown(rows, style.max_rows) : std::vector<int64_t>{0}) {
    std::vector<std::string> line{row_labels ? Label(axes, row_axis, r) : ""};
    for (int64_t c : shown_columns) {
      line.push_back(r == kElided || c == kElided
                         ? std::string(kEllipsis)
                         : FormatNumber(t.values[offset + r * columns + c], style.precision));
    }
    cells.push_back(line);
  }
  return Render(cells);
}

}  // namespace

std::string FormatNumber(double v, int precision) { return absl::StrFormat("%.*g", precision, v); }

std::string FormatTensor(absl::string_view name, const HostTensor& t, absl::string_view dtype,
                         const std::vector<std::string>& axes, const TableStyle& style) {
  const size_t rank = t.shape.size();
  if (rank == 0) {
    return absl::StrCat(name, "  ", t.values.empty() ? "(empty)" : FormatNumber(t.values[0], style.precision),
                        "  ", dtype, "\n");
  }
  std::string out = absl::StrCat(name, "  ", ShapeString(t.shape), " ", dtype, "\n");
  if (t.values.empty()) return out;
  if (rank == 1) return out + Grid(t, 0, 1, t.shape[0], axes, 0, /*row_labels=*/false, style);
  const int64_t rows = t.shape[rank - 2], columns = t.shape[rank - 1];
  if (rank == 2) return out + Grid(t, 0, rows, columns, axes, 0, /*row_labels=*/true, style);
  // Rank 3 and up: one grid per leading index, e.g. one Jacobian per row of the batch.
  const int64_t slices = ElementCount(t.shape) / (rows * columns);
  std::vector<int64_t> lead(t.shape.begin(), t.shape.end() - 2);
  for (int64_t s : Shown(slices, style.max_rows)) {
    if (s == kElided) {
      absl::StrAppend(&out, "  ", kEllipsis, "\n");
      continue;
    }
    std::vector<std::string> index;
    for (int64_t k = lead.size() - 1, rest = s; k >= 0; rest /= lead[k], --k) {
      index.insert(index.begin(), Label(axes, k, rest % lead[k]));
    }
    absl::StrAppend(&out, " ", absl::StrJoin(index, ", "), ":\n",
                    Grid(t, s * rows * columns, rows, columns, axes, rank - 2, true, style));
  }
  return out;
}

}  // namespace gradserve::client
