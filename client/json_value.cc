#include "client/json_value.h"

#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace gradserve::client {
namespace {

// Nesting deeper than this is refused rather than recursed into (a tensor needs a handful).
constexpr int kMaxDepth = 64;

class JsonReader {
 public:
  JsonReader(absl::string_view path, absl::string_view text) : path_(path), text_(text) {}

  absl::StatusOr<JsonValue> ReadDocument() {
    JsonValue value;
    absl::Status s = ReadValue(&value, 0);
    if (!s.ok()) return s;
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text after the JSON value");
    return value;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_, ":", column_, ": ", what));
  }
  void Advance() {
    if (text_[pos_] == '\n') {
      ++line_;
      column_ = 1;
    } else {
      ++column_;
    }
    ++pos_;
  }
  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) {
      Advance();
    }
  }
  bool Consume(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      Advance();
      return true;
    }
    return false;
  }

  absl::Status ReadValue(JsonValue* out, int depth) {
    SkipSpace();
    out->line = line_;
    out->column = column_;
    if (pos_ == text_.size()) return Error("expected a value, found the end of the file");
    if (depth > kMaxDepth) return Error(absl::StrCat("nested deeper than ", kMaxDepth, " levels"));
    const char c = text_[pos_];
    if (c == '[') return ReadArray(out, depth);
    if (c == '{') return ReadObject(out, depth);
    if (c == '"') {
      out->kind = JsonValue::kString;
      return ReadString(&out->text);
    }
    for (auto [word, kind, flag] : {std::tuple{"true", JsonValue::kBool, true},
                                    std::tuple{"false", JsonValue::kBool, false},
                                    std::tuple{"null", JsonValue::kNull, false}}) {
      if (text_.substr(pos_, strlen(word)) == word) {
        out->kind = kind;
        out->boolean = flag;
        for (size_t i = 0; i < strlen(word); ++i) Advance();
        return absl::OkStatus();
      }
    }
    return ReadNumber(out);
  }

  absl::Status ReadNumber(JsonValue* out) {
    const size_t start = pos_;
    while (pos_ < text_.size() && std::string_view("+-0123456789.eE").find(text_[pos_]) !=
                                      std::string_view::npos) {
      ++pos_;
    }
    const std::string token(text_.substr(start, pos_ - start));
    char* end = nullptr;
    out->kind = JsonValue::kNumber;
    out->number = token.empty() ? 0 : std::strtod(token.c_str(), &end);
    if (token.empty() || end != token.c_str() + token.size()) {
      pos_ = start;
      const size_t stop = text_.find_first_of(",]} \t\r\n", start);
      return Error(absl::StrCat("expected a number, found \"",
                                text_.substr(start, std::min<size_t>(stop - start, 20)), "\""));
    }
    column_ += token.size();
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out) {
    Advance();  // the opening quote
    while (pos_ < text_.size() && text_[pos_] != '"') {
      if (text_[pos_] == '\n') return Error("string not closed before the end of the line");
      if (text_[pos_] == '\\') {
        Advance();
        if (pos_ == text_.size()) break;
        // Escapes are kept as the escaped character: keys and the NaN/Infinity words need none.
      }
      out->push_back(text_[pos_]);
      Advance();
    }
    if (pos_ == text_.size()) return Error("string not closed before the end of the file");
    Advance();
    return absl::OkStatus();
  }

  absl::Status ReadArray(JsonValue* out, int depth) {
    out->kind = JsonValue::kArray;
    Advance();
    if (Consume(']')) return absl::OkStatus();
    while (true) {
      out->items.emplace_back();
      absl::Status s = ReadValue(&out->items.back(), depth + 1);
      if (!s.ok()) return s;
      if (Consume(']')) return absl::OkStatus();
      if (!Consume(',')) return Error("expected ',' or ']'");
    }
  }

  absl::Status ReadObject(JsonValue* out, int depth) {
    out->kind = JsonValue::kObject;
    Advance();
    if (Consume('}')) return absl::OkStatus();
    while (true) {
      SkipSpace();
      if (pos_ == text_.size() || text_[pos_] != '"') return Error("expected a quoted key");
      std::string key;
      absl::Status s = ReadString(&key);
      if (!s.ok()) return s;
      if (!Consume(':')) return Error("expected ':' after the key");
      out->members.emplace_back(std::move(key), JsonValue{});
      s = ReadValue(&out->members.back().second, depth + 1);
      if (!s.ok()) return s;
      if (Consume('}')) return absl::OkStatus();
      if (!Consume(',')) return Error("expected ',' or '}'");
    }
  }

  absl::string_view path_;
  absl::string_view text_;
  size_t pos_ = 0;
  int64_t line_ = 1, column_ = 1;
};

}  // namespace

absl::StatusOr<JsonValue> ParseJson(absl::string_view path, absl::string_view contents) {
  return JsonReader(path, contents).ReadDocument();
}

}  // namespace gradserve::client
