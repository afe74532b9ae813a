#include "tests/server_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"

namespace gradserve::testing {

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(std::vector<std::string> flags,
                                                                    std::string binary) {
  if (binary.empty()) binary = GRADSERVE_SERVER_BINARY;
  flags.insert(flags.begin(), "--listen=127.0.0.1:0");
  int out[2];
  if (pipe(out) != 0) return absl::InternalError("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    std::vector<char*> argv{binary.data()};
    for (std::string& f : flags) argv.push_back(f.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(out[1]);
  // Read stdout until the "listening on" line (the server prints it once it accepts calls).
  std::string seen;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[512];
    const ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    seen.append(buf, n);
    const size_t at = seen.find("listening on ");
    const size_t eol = at == std::string::npos ? at : seen.find('\n', at);
    if (eol != std::string::npos) {
      std::string address = seen.substr(at + 13, eol - at - 13);
      auto log = std::make_shared<Log>();
      log->text = seen;
      // Keep reading stdout in the background so the server never blocks on a full pipe.
      std::thread([fd = out[0], log] {
        char buf[512];
        for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) {
          std::lock_guard<std::mutex> lock(log->mu);
          log->text.append(buf, n);
        }
        close(fd);
      }).detach();
      return std::unique_ptr<ServerProcess>(new ServerProcess(pid, address, std::move(log)));
    }
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  close(out[0]);
  return absl::UnavailableError(absl::StrCat(binary, " did not report its address; it printed: ", seen));
}

std::string ServerProcess::Output() const {
  std::lock_guard<std::mutex> lock(log_->mu);
  return log_->text;
}

bool ServerProcess::running() {
  if (reaped_) return false;
  if (waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
  return !reaped_;
}

int ServerProcess::Terminate(int timeout_ms) {
  if (!running()) return status_;
  kill(pid_, SIGTERM);
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    if (!running()) return status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status_, 0);
  reaped_ = true;
  return -1;
}

ServerProcess::~ServerProcess() { Terminate(); }

}  // namespace gradserve::testing
