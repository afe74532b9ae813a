// /proc sampling for the soak test: a process's resident memory and open file descriptors, the
// two numbers that must stay flat while misbehaving clients hammer the server.
//
//   const ProcSample s = SampleProc(server_pid);
//   std::printf("RSS %.1f MiB, %d fds\n", s.rss_kib / 1024.0, s.fds);
#ifndef GRADSERVE_TESTS_SOAK_PROC_H_
#define GRADSERVE_TESTS_SOAK_PROC_H_

#include <cstdint>

namespace gradserve::soak {

// True in an AddressSanitizer build, where freed memory sits in a quarantine and RSS says little.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

struct ProcSample {
  int64_t rss_kib = -1;  // VmRSS; -1 when /proc/<pid>/status could not be read
  int fds = -1;          // entries of /proc/<pid>/fd; -1 when it could not be listed
};

ProcSample SampleProc(int pid);

}  // namespace gradserve::soak

#endif  // GRADSERVE_TESTS_SOAK_PROC_H_
