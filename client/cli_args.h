// The command line of a tool with subcommands, read with Abseil's flag registry but without
// absl::ParseCommandLine, which exits with status 1 on a bad flag — and 1 is what `gradserve
// verify` says about a wrong gradient. Here a bad flag is an InvalidArgument the caller turns
// into exit status 2.
//
//   gradserve --target=host:50051 verify --logits 1.75,1.75 --target-probs 0,1 --jacobian
//
// Accepted forms: "--name=value", "--name value" (non-bool flags), "--name" / "--noname" and
// "--name=true|false" (bool flags); '-' and '_' in names are the same, so `--target-probs` sets
// ABSL_FLAG(target_probs). "--" ends the flags. "-h", "--help" and "help" ask for help; "--version" for the version.
//
//   absl::StatusOr<CommandLine> cl = ParseCommandLine(argc, argv, {"target", "logits"});
//   cl->positional == {"verify"}; cl->flags == {"target", "logits"}
#ifndef GRADSERVE_CLIENT_CLI_ARGS_H_
#define GRADSERVE_CLIENT_CLI_ARGS_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace gradserve::client {

struct CommandLine {
  std::vector<std::string> positional;  // the subcommand first, then any other non-flag words
  std::vector<std::string> flags;       // the flags given, by registered name, in order
  bool help = false;
  bool version = false;  // --version
};

// Reads argv[1..argc), setting each flag through Abseil (its type's parser, its default when not
// given). Only names in `known` are accepted, so Abseil's own flags (--flagfile, ...) are not.
absl::StatusOr<CommandLine> ParseCommandLine(int argc, const char* const* argv,
                                             const std::set<std::string>& known);

// Aligned "  --name=default  help" lines for the registered flags `names`, written with dashes.
std::string FlagsHelp(const std::vector<std::string>& names);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_CLI_ARGS_H_
