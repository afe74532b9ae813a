// The subcommands: forward, backward, verify and health make one call, bench many. Each builds its
// request, calls, prints the answer to `out` (a table or JSON), writes `--output`, and returns
// the process's exit status (exit_codes.h); messages for people go to `err`.
//
//   OutputOptions output;  // table to stdout
//   return RunVerify(conn, verify_inputs, output, std::cout, std::cerr);  // 0, 1, 2 or 3
#ifndef GRADSERVE_CLIENT_COMMANDS_H_
#define GRADSERVE_CLIENT_COMMANDS_H_

#include <ostream>
#include <string>

#include "client/bench.h"
#include "client/channel.h"
#include "client/requests.h"
#include "client/table_format.h"

namespace gradserve::client {

enum class OutputFormat { kTable, kJson };

struct OutputOptions {
  OutputFormat format = OutputFormat::kTable;
  TableStyle style;
  std::string path;   // --output: a .npy or .csv file; empty: none
  std::string field;  // --output-field; empty: the command's main tensor
};

struct ChunkOptions;  // chunked.h

// A batch too big for one message is sent in chunks (chunked.h), with the same result.
int RunForward(const ConnectionOptions& conn, const ForwardInputs& in, const OutputOptions& output,
               const ChunkOptions& chunks, std::ostream& out, std::ostream& err);
int RunBackward(const ConnectionOptions& conn, const BackwardInputs& in, const OutputOptions& output,
                const ChunkOptions& chunks, std::ostream& out, std::ostream& err);
// 0 when the response's `ok` is true, 1 when it is false.
int RunVerify(const ConnectionOptions& conn, const VerifyInputs& in, const OutputOptions& output,
              std::ostream& out, std::ostream& err);
// grpc.health.v1.Health/Check of `service` ("" is the whole server): 0 when SERVING, else 3.
int RunHealth(const ConnectionOptions& conn, const std::string& service, OutputFormat format,
              std::ostream& out, std::ostream& err);

// Runs the load generator and prints its summary: 0 when every call succeeded, 3 when any failed
// (the first error goes to `err`) or the target is unreachable. With `live_progress`, a line on
// `err` is rewritten twice a second.
int RunBenchCommand(const ConnectionOptions& conn, const BenchOptions& options, OutputFormat format,
                    bool live_progress, std::ostream& out, std::ostream& err);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_COMMANDS_H_
