// Throwaway TLS material for tests, made with openssl in a temp dir that is removed afterwards:
// a CA, a server certificate for 127.0.0.1 / localhost and a client certificate, all CA-signed.
//
//   Certificates certs;
//   ASSERT_TRUE(certs.ok());
//   ServerProcess::Start({"--tls_cert=" + certs.Path("server.pem"), ...});
#ifndef GRADSERVE_TESTS_TEST_CERTIFICATES_H_
#define GRADSERVE_TESTS_TEST_CERTIFICATES_H_

#include <string>

namespace gradserve::testing {

class Certificates {
 public:
  Certificates();
  ~Certificates();
  Certificates(const Certificates&) = delete;
  Certificates& operator=(const Certificates&) = delete;

  bool ok() const { return ok_; }
  // ca.pem, ca.key, server.pem, server.key, client.pem, client.key
  std::string Path(const char* name) const;
  std::string Pem(const char* name) const;

 private:
  std::string dir_;
  bool ok_ = false;
};

}  // namespace gradserve::testing

#endif  // GRADSERVE_TESTS_TEST_CERTIFICATES_H_
