#include "tests/soak_proc.h"

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace gradserve::soak {

ProcSample SampleProc(int pid) {
  ProcSample s;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = std::atoll(line.c_str() + 6);
  }
  if (DIR* d = opendir(absl::StrCat("/proc/", pid, "/fd").c_str())) {
    s.fds = 0;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++s.fds;  // "." and ".." are not descriptors
    }
    closedir(d);
  }
  return s;
}

}  // namespace gradserve::soak
