// The verification page (server/http/page/index.html), embedded at build time by embed_file.cmake
// so the binary serves it with no files beside it, offline.
#ifndef GRADSERVE_SERVER_HTTP_PAGE_H_
#define GRADSERVE_SERVER_HTTP_PAGE_H_

#include <string_view>

namespace gradserve {

std::string_view VerifierPage();

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_HTTP_PAGE_H_
