// gradserve: the command-line client of the gradserve service, and its load generator.
//
//   gradserve --target=127.0.0.1:50051 verify --logits 1.75,1.75 --target-probs 0,1
//       --candidate 6.125,2.625
//
// Flags are defined here and nowhere else, read once into the option structs of client/, and
// parsed by ParseCommandLine so that bad usage exits with 2 (see exit_codes.h).
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "grpc/support/log.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/version.h"
#include "client/bench.h"
#include "client/chunked.h"
#include "client/cli_args.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/inputs.h"
#include "client/option_values.h"
#include "client/requests.h"

// Global.
ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "server: host:port, dns:///host:port or ipv4:a:port,b:port (round-robin over all)");
ABSL_FLAG(std::string, token, "", "bearer token for a server started with one (default: $GRADSERVE_TOKEN)");
ABSL_FLAG(std::string, timeout, "30", "deadline of each call: seconds, or a duration like 500ms; 0: none");
ABSL_FLAG(bool, tls, false, "connect with TLS, checking the server against the system's roots (or --tls_ca)");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA that signed the server's certificate (implies --tls)");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate, for a server that requires mutual TLS (implies --tls)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_server_name, "", "name to check the server's certificate against (default: the target's host)");
ABSL_FLAG(std::string, format, "table", "output: table (for people) or json (the response, for scripts)");
// Inputs of forward, backward and verify.
ABSL_FLAG(std::string, logits, "", "logits: inline '1.75,1.75' (';' between rows) or a .csv/.json/.npy file (see inputs below)");
ABSL_FLAG(std::string, labels, "", "targets as class indices, one per row: '1,0' or a file");
ABSL_FLAG(std::string, target_probs, "", "targets as probabilities, the logits' shape: '0,1' or a file");
ABSL_FLAG(std::string, weights, "", "class weights, one per class: '1,2,1' or a file");
ABSL_FLAG(std::string, reduction, "", "mean, sum or none (default: the server's, mean)");
ABSL_FLAG(double, label_smoothing, 0, "label smoothing in [0, 1]");
ABSL_FLAG(int64_t, ignore_index, -100, "class index whose rows are ignored (only sent when given)");
ABSL_FLAG(std::string, dtype, "",
          "element type sent, and the precision the server computes in: f16, bf16, f32 or f64 (default: the "
          "logits' own: a .npy's float type, float64 for text; bench: f64); converted rounding to nearest-even");
ABSL_FLAG(std::string, encoding, "raw", "tensor encoding on the wire: raw (bytes) or values (doubles)");
ABSL_FLAG(std::string, output, "",
          "also write the main tensor to this .npy or .csv file, in the response's dtype (bfloat16 as float32: numpy "
          "has no bfloat16); --format=json then leaves that tensor out");
ABSL_FLAG(std::string, output_field, "", "the response tensor --output writes (default: the main one)");
ABSL_FLAG(int32_t, precision, 6, "significant digits in tables");
ABSL_FLAG(double, chunk_mib, 0,
          "forward/backward: a batch whose request or response would pass N MiB is sent in chunks of N MiB of "
          "rows, with the result of one call (0: over the server's default 64 MiB message limit, in 16 MiB "
          "chunks); .npy inputs are read and --output written chunk by chunk");
// forward
ABSL_FLAG(bool, log_probs, false, "also return log-probabilities");
// backward
ABSL_FLAG(std::string, grad_probs, "", "instead of targets: upstream dL/dA, the logits' shape (a VJP through softmax)");
ABSL_FLAG(std::string, grad_loss, "", "upstream dL/dloss: a scalar, or one per row with --reduction=none");
ABSL_FLAG(std::string, method, "fused", "fused (closed form) or chain-rule (dL/dA times the softmax Jacobian)");
ABSL_FLAG(bool, jacobian, false, "also return the softmax Jacobian of each row");
ABSL_FLAG(bool, probs, false, "also return the probabilities");
// verify
ABSL_FLAG(std::string, candidate, "", "the gradient dL/dlogits to check, the logits' shape");
ABSL_FLAG(std::string, candidate_jacobian, "", "a softmax Jacobian to check: [batch, classes, classes]");
ABSL_FLAG(double, epsilon, 0, "central-difference step (0: the server chooses)");
ABSL_FLAG(double, rtol, 0, "relative tolerance (0: 1e-5)");
ABSL_FLAG(double, atol, 0, "absolute tolerance (0: 1e-8)");
ABSL_FLAG(std::string, numeric_method, "", "complex-step or central-difference (default: the server's most accurate)");
// health
ABSL_FLAG(std::string, service, "", "service to check (default: the whole server)");
// bench
ABSL_FLAG(std::string, rpc, "backward", "forward, backward, verify, stream (BackwardStream) or health");
ABSL_FLAG(std::string, shape, "1,10", "logits shape BATCH,CLASSES");
ABSL_FLAG(int32_t, concurrency, 8, "calls in flight at every moment");
ABSL_FLAG(int32_t, connections, 1, "TCP connections (per server address) to spread the calls over");
ABSL_FLAG(std::string, duration, "5", "how long to run: seconds or a duration like 1m");
ABSL_FLAG(int64_t, requests, 0, "stop after this many calls instead (0: run for --duration)");
ABSL_FLAG(uint64_t, seed, 1, "seed of the random logits and labels");

namespace gradserve::client {
namespace {

const std::vector<std::string> kGlobalFlags = {"target", "token", "timeout", "tls", "tls_ca", "tls_cert",
                                               "tls_key", "tls_server_name", "format"};
const std::vector<std::string> kLossFlags = {"logits", "labels", "target_probs", "weights", "reduction",
                                             "label_smoothing", "ignore_index", "dtype", "encoding",
                                             "output", "output_field", "precision"};

constexpr char kExitStatus[] =
    "exit status: 0 ok; 1 verify found the gradient wrong; 2 the input is wrong, said by the client\n"
    "(nothing sent) or the server (INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION, UNAUTHENTICATED,\n"
    "PERMISSION_DENIED, UNIMPLEMENTED): do not retry; 3 the call failed (unreachable, UNAVAILABLE,\n"
    "DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, CANCELLED, ...): it may succeed later\n";

constexpr char kInputs[] =
    "inputs: inline numbers ('2,1,0.1;0.5,2.5,0.3', ';' between rows; without ';' one unbatched example)\n"
    "or a file by its extension: .csv (one row per line; '#' lines skipped; a first line without numbers\n"
    "is a header and is skipped, and a header starting with an empty cell, as pandas writes its index,\n"
    "drops the first column), .json (nested arrays, or a tensor as --format=json prints it) or .npy\n"
    "(float16/32/64, integers, bools). Requests are in the logits' dtype unless --dtype says otherwise.\n";

struct Command {
  std::string summary;
  std::vector<std::string> flags;  // besides the global ones
  std::string example;
};

const std::map<std::string, Command>& Commands() {
  static const auto* commands = [] {
    auto* table = new std::map<std::string, Command>{
      {"forward", {"softmax probabilities, and the cross-entropy loss when targets are given",
                   {"log_probs", "chunk_mib"}, "gradserve forward --logits '2,1,0.1;0.5,2.5,0.3' --labels 0,1"}},
      {"backward", {"the gradient dL/dlogits of cross-entropy, or a vector-Jacobian product through softmax",
                    {"grad_probs", "grad_loss", "method", "jacobian", "probs", "chunk_mib"},
                    "gradserve backward --logits 1.75,1.75 --target-probs 0,1 --method chain-rule --jacobian"}},
      {"verify", {"checks a gradient (or Jacobian): the verdict, the known mistake behind a wrong one, the right one",
                  {"candidate", "candidate_jacobian", "epsilon", "rtol", "atol", "numeric_method"},
                  "gradserve verify --logits 1.75,1.75 --target-probs 0,1 --candidate 6.125,2.625"}},
      {"health", {"asks grpc.health.v1.Health whether the server is SERVING (exit status 0) or not (3)",
                  {"service"}, "gradserve --target=dns:///gradserve:50051 health"}},
      {"bench", {"load generator: keeps --concurrency calls in flight and reports qps and latency",
                 {"rpc", "shape", "dtype", "encoding", "concurrency", "connections", "duration", "requests", "seed"},
                 "gradserve bench --rpc backward --shape 64,1000 --dtype f32 --concurrency 16 --duration 10"}},
    };
    for (auto& [name, command] : *table) {
      if (name != "health" && name != "bench") {
        command.flags.insert(command.flags.begin(), kLossFlags.begin(), kLossFlags.end());
      }
    }
    return table;
  }();
  return *commands;
}

std::string MainUsage() {
  std::string out =
      "gradserve: client of the gradserve softmax cross-entropy gradient service\n\n"
      "usage: gradserve [global flags] COMMAND [flags]\n\ncommands:\n";
  for (const auto& [name, command] : Commands()) {
    absl::StrAppend(&out, absl::StrFormat("  %-9s ", name), command.summary, "\n");
  }
  absl::StrAppend(&out, "\nglobal flags:\n", FlagsHelp(kGlobalFlags), "  --version  print the version\n\n",
                  kInputs, "\n", kExitStatus, "\nexample:\n  ", Commands().at("verify").example,
                  "\n\n'gradserve COMMAND --help' lists a command's flags.\n");
  return out;
}

std::string CommandUsage(const std::string& name, const Command& command) {
  return absl::StrCat("usage: gradserve [global flags] ", name, " [flags]\n\n", command.summary,
                      "\n\nflags:\n", FlagsHelp(command.flags), "\nglobal flags:\n", FlagsHelp(kGlobalFlags),
                      name == "health" || name == "bench" ? "" : absl::StrCat("\n", kInputs),
                      "\n", kExitStatus, "\nexample:\n  ", command.example, "\n");
}

absl::StatusOr<LossInputs> ReadLossFlags(const std::set<std::string>& given) {
  LossInputs in;
  in.logits = absl::GetFlag(FLAGS_logits);
  in.labels = absl::GetFlag(FLAGS_labels);
  in.target_probs = absl::GetFlag(FLAGS_target_probs);
  in.weights = absl::GetFlag(FLAGS_weights);
  GRADSERVE_ASSIGN_OR_RETURN(in.reduction, ParseReduction(absl::GetFlag(FLAGS_reduction)));
  in.label_smoothing = absl::GetFlag(FLAGS_label_smoothing);
  if (given.count("ignore_index")) in.ignore_index = absl::GetFlag(FLAGS_ignore_index);
  GRADSERVE_ASSIGN_OR_RETURN(in.format.dtype, ParseDataType(absl::GetFlag(FLAGS_dtype)));
  GRADSERVE_ASSIGN_OR_RETURN(in.format.encoding, ParseEncoding(absl::GetFlag(FLAGS_encoding)));
  return in;
}

absl::StatusOr<OutputOptions> ReadOutputFlags() {
  OutputOptions out;
  GRADSERVE_ASSIGN_OR_RETURN(out.format, ParseOutputFormat(absl::GetFlag(FLAGS_format)));
  out.style.precision = std::max(1, absl::GetFlag(FLAGS_precision));
  out.path = absl::GetFlag(FLAGS_output);
  out.field = absl::GetFlag(FLAGS_output_field);
  return out;
}

absl::StatusOr<ConnectionOptions> ReadConnectionFlags() {
  ConnectionOptions conn;
  conn.target = absl::GetFlag(FLAGS_target);
  conn.token = absl::GetFlag(FLAGS_token);
  if (conn.token.empty()) {
    const char* env = std::getenv("GRADSERVE_TOKEN");
    if (env != nullptr) conn.token = env;
  }
  GRADSERVE_ASSIGN_OR_RETURN(conn.timeout, ParseSeconds("timeout", absl::GetFlag(FLAGS_timeout)));
  const std::string ca = absl::GetFlag(FLAGS_tls_ca), cert = absl::GetFlag(FLAGS_tls_cert),
                    key = absl::GetFlag(FLAGS_tls_key);
  if (cert.empty() != key.empty()) return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  conn.tls = absl::GetFlag(FLAGS_tls) || !ca.empty() || !cert.empty();
  conn.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  if (!ca.empty()) {
    GRADSERVE_ASSIGN_OR_RETURN(conn.tls_root_ca, ReadWholeFile(ca));
  }
  if (!cert.empty()) {
    GRADSERVE_ASSIGN_OR_RETURN(conn.tls_cert_chain, ReadWholeFile(cert));
    GRADSERVE_ASSIGN_OR_RETURN(conn.tls_private_key, ReadWholeFile(key));
  }
  return conn;
}

absl::StatusOr<BenchOptions> ReadBenchFlags() {
  BenchOptions o;
  GRADSERVE_ASSIGN_OR_RETURN(o.rpc, ParseBenchRpc(absl::GetFlag(FLAGS_rpc)));
  GRADSERVE_ASSIGN_OR_RETURN(auto shape, ParseShape(absl::GetFlag(FLAGS_shape)));
  o.batch = shape.first;
  o.classes = shape.second;
  GRADSERVE_ASSIGN_OR_RETURN(o.format.dtype, ParseDataType(absl::GetFlag(FLAGS_dtype)));
  GRADSERVE_ASSIGN_OR_RETURN(o.format.encoding, ParseEncoding(absl::GetFlag(FLAGS_encoding)));
  o.concurrency = absl::GetFlag(FLAGS_concurrency);
  o.connections = absl::GetFlag(FLAGS_connections);
  GRADSERVE_ASSIGN_OR_RETURN(o.duration, ParseSeconds("duration", absl::GetFlag(FLAGS_duration)));
  o.requests = absl::GetFlag(FLAGS_requests);
  o.seed = absl::GetFlag(FLAGS_seed);
  if (o.concurrency < 1 || o.connections < 1 || o.requests < 0) {
    return absl::InvalidArgumentError("--concurrency and --connections must be at least 1, --requests not negative");
  }
  return o;
}

int Main(int argc, char** argv) {
  std::set<std::string> known(kGlobalFlags.begin(), kGlobalFlags.end());
  for (const auto& [name, command] : Commands()) known.insert(command.flags.begin(), command.flags.end());
  absl::StatusOr<CommandLine> cl = ParseCommandLine(argc, argv, known);
  auto usage_error = [](absl::string_view message) {
    std::cerr << "gradserve: " << message << "\n(gradserve --help shows the usage)\n";
    return kExitUsage;
  };
  if (!cl.ok()) return usage_error(cl.status().message());
  if (cl->version) {
    std::cout << "gradserve " << gradserve::kVersion
              << (gradserve::kGitCommit[0] != '\0' ? absl::StrCat(" (commit ", gradserve::kGitCommit, ")") : "")
              << "\n";
    return kExitOk;
  }
  if (cl->positional.empty()) {
    (cl->help ? std::cout : std::cerr) << MainUsage();
    return cl->help ? kExitOk : kExitUsage;
  }
  const std::string& name = cl->positional[0];
  const auto found = Commands().find(name);
  if (found == Commands().end()) return usage_error(absl::StrCat("unknown command \"", name, "\""));
  const Command& command = found->second;
  if (cl->help) {
    std::cout << CommandUsage(name, command);
    return kExitOk;
  }
  if (cl->positional.size() > 1) return usage_error(absl::StrCat("unexpected argument \"", cl->positional[1], "\""));
  const std::set<std::string> given(cl->flags.begin(), cl->flags.end());
  for (const std::string& flag : cl->flags) {
    const bool global = std::count(kGlobalFlags.begin(), kGlobalFlags.end(), flag) > 0;
    if (!global && std::count(command.flags.begin(), command.flags.end(), flag) == 0) {
      std::string dashed = flag;
      for (char& c : dashed) c = c == '_' ? '-' : c;
      return usage_error(absl::StrCat("--", dashed, " is not a flag of ", name, " (gradserve ", name, " --help)"));
    }
  }

  absl::StatusOr<ConnectionOptions> conn = ReadConnectionFlags();
  if (!conn.ok()) return usage_error(conn.status().message());
  absl::StatusOr<OutputOptions> output = ReadOutputFlags();
  if (!output.ok()) return usage_error(output.status().message());
  if (name == "health") return RunHealth(*conn, absl::GetFlag(FLAGS_service), output->format, std::cout, std::cerr);
  if (name == "bench") {
    absl::StatusOr<BenchOptions> bench = ReadBenchFlags();
    if (!bench.ok()) return usage_error(bench.status().message());
    // A live line on a terminal only: a redirected stderr gets no carriage-return noise.
    // Megabyte responses would each get a fresh mmap and a page fault per 4 KiB: keep them on
    // the heap so the load generator costs as little as it can.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return RunBenchCommand(*conn, *bench, output->format, isatty(STDERR_FILENO), std::cout, std::cerr);
  }

  absl::StatusOr<LossInputs> loss = ReadLossFlags(given);
  if (!loss.ok()) return usage_error(loss.status().message());
  ChunkOptions chunks;
  const double chunk_mib = absl::GetFlag(FLAGS_chunk_mib);
  if (chunk_mib != 0) {
    if (!(chunk_mib >= 1.0 / 64 && chunk_mib <= 4096)) return usage_error("--chunk-mib must be 0 or in [1/64, 4096]");
    chunks.limit_bytes = chunks.chunk_bytes = static_cast<int64_t>(chunk_mib * (1 << 20));
  }
  // A bar on a terminal only, as bench's live line.
  chunks.progress = isatty(STDERR_FILENO);
  // Chunks and responses are tens of MiB each: reuse heap memory rather than map and fault in
  // fresh pages for every one (as bench does).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (name == "forward") {
    ForwardInputs in{*loss, absl::GetFlag(FLAGS_log_probs)};
    return RunForward(*conn, in, *output, chunks, std::cout, std::cerr);
  }
  if (name == "backward") {
    BackwardInputs in;
    in.loss = *loss;
    in.grad_probs = absl::GetFlag(FLAGS_grad_probs);
    in.grad_loss = absl::GetFlag(FLAGS_grad_loss);
    absl::StatusOr<gradserve::v1::Method> method = ParseMethod(absl::GetFlag(FLAGS_method));
    if (!method.ok()) return usage_error(method.status().message());
    in.method = *method;
    in.jacobian = absl::GetFlag(FLAGS_jacobian);
    in.probabilities = absl::GetFlag(FLAGS_probs);
    return RunBackward(*conn, in, *output, chunks, std::cout, std::cerr);
  }
  VerifyInputs in;
  in.loss = *loss;
  in.candidate = absl::GetFlag(FLAGS_candidate);
  in.candidate_jacobian = absl::GetFlag(FLAGS_candidate_jacobian);
  in.epsilon = absl::GetFlag(FLAGS_epsilon);
  in.rtol = absl::GetFlag(FLAGS_rtol);
  in.atol = absl::GetFlag(FLAGS_atol);
  absl::StatusOr<gradserve::v1::NumericMethod> numeric = ParseNumericMethod(absl::GetFlag(FLAGS_numeric_method));
  if (!numeric.ok()) return usage_error(numeric.status().message());
  in.numeric_method = *numeric;
  return RunVerify(*conn, in, *output, std::cout, std::cerr);
}

}  // namespace
}  // namespace gradserve::client

int main(int argc, char** argv) {
  // gRPC core logs its own view of a failed handshake to stderr ("E1130 ... Handshake failed");
  // the CLI prints the call's status and a hint instead. GRPC_VERBOSITY brings the logs back.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function([](gpr_log_func_args*) {});
  return gradserve::client::Main(argc, argv);
}
