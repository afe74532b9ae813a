// The process's descriptor limit, raised at start-up: every connection takes a descriptor, and
// distributions often start services with a soft limit of 1024 below a hard limit of 524288 or
// more. Like Go's runtime, the server raises the soft limit to the hard one.
#ifndef GRADSERVE_SERVER_DESCRIPTOR_LIMIT_H_
#define GRADSERVE_SERVER_DESCRIPTOR_LIMIT_H_

#include <cstdint>

namespace gradserve {

// Sets RLIMIT_NOFILE's soft limit to its hard limit; returns the soft limit now in force.
int64_t RaiseDescriptorLimit();

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_DESCRIPTOR_LIMIT_H_
