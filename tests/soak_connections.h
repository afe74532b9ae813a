// Clients of the soak test that go away at the connection level while calls are in flight: a
// channel released, a client process killed (SIGKILL), a raw TCP connection reset half way
// through a request. Each returns once its connection is gone and reports to the Tally; what the
// server must show for them is only that it stays up, correct and flat (soak_test.cc).
//
//   DropChannelInFlight(address, BigRequest(), rng, tally);
//   KillClientInFlight(address, rng, tally);
//   ResetMidRequest(port, BigRequest(), rng);
#ifndef GRADSERVE_TESTS_SOAK_CONNECTIONS_H_
#define GRADSERVE_TESTS_SOAK_CONNECTIONS_H_

#include <random>
#include <string>

#include "gradserve/v1/gradserve.pb.h"
#include "tests/soak_calls.h"

namespace gradserve::soak {

// Releases a channel (its own connection) while 1-4 `big` Backward calls are in flight, then
// waits for them: each must end OK or RESOURCE_EXHAUSTED.
void DropChannelInFlight(const std::string& address, const v1::BackwardRequest& big,
                         std::mt19937_64& rng, Tally& tally);

// Starts the soak_drop_client program against `address` and kills it with SIGKILL a few
// milliseconds after its big calls are under way, so that the kernel closes its connection.
void KillClientInFlight(const std::string& address, std::mt19937_64& rng, Tally& tally);

// Opens a TCP connection to 127.0.0.1:`port`, sends a random prefix of a real HTTP/2 gRPC
// Backward call carrying `big` (preface, SETTINGS, HEADERS, part of the body) and resets the
// connection (SO_LINGER 0, so close sends RST).
void ResetMidRequest(int port, const v1::BackwardRequest& big, std::mt19937_64& rng);

}  // namespace gradserve::soak

#endif  // GRADSERVE_TESTS_SOAK_CONNECTIONS_H_
