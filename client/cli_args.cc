#include "client/cli_args.h"

#include <algorithm>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace gradserve::client {
namespace {

std::string Dashed(absl::string_view name) { return absl::StrReplaceAll(name, {{"_", "-"}}); }

}  // namespace

absl::StatusOr<CommandLine> ParseCommandLine(int argc, const char* const* argv,
                                             const std::set<std::string>& known) {
  CommandLine out;
  bool flags_ended = false;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (flags_ended || arg.size() < 2 || arg[0] != '-') {
      if (!flags_ended && out.positional.empty() && arg == "help") {
        out.help = true;
      } else {
        out.positional.emplace_back(arg);
      }
      continue;
    }
    if (arg == "--") {
      flags_ended = true;
      continue;
    }
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      out.help = true;
      continue;
    }
    if (arg == "--version" || arg == "-version") {
      out.version = true;
      continue;
    }
    absl::string_view body = absl::StripPrefix(absl::StripPrefix(arg, "-"), "-");
    const size_t eq = body.find('=');
    const bool has_value = eq != absl::string_view::npos;
    std::string name = absl::StrReplaceAll(body.substr(0, eq), {{"-", "_"}});
    std::string value = has_value ? std::string(body.substr(eq + 1)) : "";
    absl::CommandLineFlag* flag = known.count(name) ? absl::FindCommandLineFlag(name) : nullptr;
    // "--nojacobian" is "--jacobian=false".
    if (flag == nullptr && !has_value && absl::StartsWith(name, "no") && known.count(name.substr(2))) {
      absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) {
        flag = negated;
        name = name.substr(2);
        value = "false";
      }
    }
    if (flag == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg));
    if (!has_value && value.empty()) {
      if (flag->IsOfType<bool>()) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];  // the next word, even if it starts with '-': "--logits -1,2"
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", Dashed(name), " needs a value"));
      }
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat("--", Dashed(name), "=", value, ": ", error));
    }
    out.flags.push_back(name);
  }
  return out;
}

std::string FlagsHelp(const std::vector<std::string>& names) {
  std::vector<std::pair<std::string, std::string>> rows;
  size_t width = 0;
  for (const std::string& name : names) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) continue;
    std::string left = absl::StrCat("--", Dashed(name));
    const std::string def = flag->DefaultValue();
    if (!def.empty() && !flag->IsOfType<bool>()) absl::StrAppend(&left, "=", def);
    width = std::max(width, left.size());
    rows.emplace_back(left, flag->Help());
  }
  std::string out;
  for (const auto& [left, help] : rows) {
    absl::StrAppend(&out, "  ", left, std::string(width - left.size() + 2, ' '), help, "\n");
  }
  return out;
}

}  // namespace gradserve::client
