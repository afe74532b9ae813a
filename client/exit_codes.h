// The exit statuses of the `gradserve` command, part of its interface for scripts.
#ifndef GRADSERVE_CLIENT_EXIT_CODES_H_
#define GRADSERVE_CLIENT_EXIT_CODES_H_

namespace gradserve::client {

enum ExitCode : int {
  kExitOk = 0,
  kExitVerifyFailed = 1,  // verify ran and the gradient (or the server's own check) is wrong
  kExitUsage = 2,         // bad flags or input; nothing was sent
  kExitRpcFailed = 3,     // the server or the network said no (the gRPC code is printed)
};

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_EXIT_CODES_H_
