// Load generator for POST /v1/* (the JSON gateway): --concurrency keep-alive connections, each
// re-sending one request for --duration seconds; prints one JSON line like `gradserve bench`.
//
//   build/tests/gradserve_http_bench --port=8080 --rpc=backward --shape=256,1000 --concurrency=2
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "httplib.h"

ABSL_FLAG(int, port, 8080, "HTTP port of gradserve-server (--http_listen)");
ABSL_FLAG(std::string, rpc, "backward", "forward or backward");
ABSL_FLAG(std::string, shape, "256,1000", "logits shape, ROWS,CLASSES");
ABSL_FLAG(int, concurrency, 2, "connections, one call in flight on each");
ABSL_FLAG(double, duration, 10, "seconds");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::vector<std::string> dims = absl::StrSplit(absl::GetFlag(FLAGS_shape), ',');
  const int rows = std::stoi(dims.at(0)), classes = std::stoi(dims.at(1));
  // Logits like a model's (several significant digits), labels spread over the classes.
  std::string body = absl::StrCat(R"({"logits": {"shape": [)", rows, ",", classes, R"(], "values": [)");
  for (int k = 0; k < rows * classes; ++k) absl::StrAppend(&body, k ? "," : "", ((k * 7919) % 2000 - 1000) * 0.00731);
  absl::StrAppend(&body, R"(]}, "targets": {"class_indices": {"values": [)");
  for (int r = 0; r < rows; ++r) absl::StrAppend(&body, r ? "," : "", (r * 31) % classes);
  absl::StrAppend(&body, "]}}}");
  const std::string path = "/v1/" + absl::GetFlag(FLAGS_rpc);

  std::atomic<long> ok{0}, errors{0};
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(absl::GetFlag(FLAGS_duration));
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < absl::GetFlag(FLAGS_concurrency); ++t) {
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", absl::GetFlag(FLAGS_port));
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      client.set_read_timeout(60, 0);
      // The body is sent from `body` and the answer kept in one reused string, as a client
      // that cares would: Client::Post would copy the body and grow a new string per answer,
      // and fresh memory costs a page fault per 4 KiB (see server/http/json_gateway.cc).
      std::string answer;
      while (std::chrono::steady_clock::now() < end) {
        httplib::Request req;
        req.method = "POST";
        req.path = path;
        req.set_header("Content-Type", "application/json");
        req.content_length_ = body.size();
        req.content_provider_ = [&body](size_t offset, size_t length, httplib::DataSink& sink) {
          return sink.write(body.data() + offset, length);
        };
        answer.clear();
        req.content_receiver = [&answer](const char* data, size_t n, uint64_t, uint64_t) {
          answer.append(data, n);
          return true;
        };
        httplib::Response res;
        httplib::Error error = httplib::Error::Success;
        // A whole answer: status 200 and the gradient's JSON, as long as the numbers sent.
        const bool sent = client.send(req, res, error);
        if (sent && res.status == 200 && answer.size() > body.size() / 2 && answer.front() == '{' &&
            answer.back() == '}') {
          ++ok;
        } else if (errors++ == 0) {
          std::fprintf(stderr, "first error: %s\n",
                       sent ? (std::to_string(res.status) + " " + answer.substr(0, 300)).c_str()
                            : httplib::to_string(error).c_str());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("{\"rpc\": \"http %s\", \"requests\": %ld, \"errors\": %ld, \"qps\": %.1f, \"body_bytes\": %zu}\n",
              path.c_str(), ok.load(), errors.load(), ok / seconds, body.size());
  return errors > 0 ? 1 : 0;
}
