# Integration tests of the HTTP listener (--http_listen) against the real gradserve-server binary,
# and the verification page in headless Chromium (tests/browser).
find_package(PkgConfig REQUIRED)
pkg_check_modules(TEST_HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
find_package(nlohmann_json 3.11 REQUIRED)

gradserve_test(http_test gradserve::proto gradserve_test_server_process PkgConfig::TEST_HTTPLIB nlohmann_json::nlohmann_json)
gradserve_test(http_metrics_test gradserve::proto gradserve_test_server_process PkgConfig::TEST_HTTPLIB nlohmann_json::nlohmann_json)
