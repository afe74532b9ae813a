#include "tests/test_certificates.h"

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace gradserve::testing {

Certificates::Certificates() {
  char tmpl[] = "/tmp/gradserve-tls-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return;
  dir_ = tmpl;
  const std::string script = absl::StrCat(
      "cd ", dir_, " && (",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca && ",
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost && ",
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > san.ext && ",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile san.ext && ",
      "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=client && ",
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 1",
      ") > openssl.log 2>&1");
  ok_ = std::system(script.c_str()) == 0;
}

Certificates::~Certificates() {
  if (!dir_.empty()) std::system(absl::StrCat("rm -rf ", dir_).c_str());
}

std::string Certificates::Path(const char* name) const { return absl::StrCat(dir_, "/", name); }

std::string Certificates::Pem(const char* name) const {
  std::ifstream in(Path(name));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace gradserve::testing
