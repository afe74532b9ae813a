# Integration tests of the HTTP listener (--http_listen) against the real gradserve-server binary,
# and the verification page in headless Chromium (tests/browser).
find_package(PkgConfig REQUIRED)
pkg_check_modules(TEST_HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
find_package(nlohmann_json 3.11 REQUIRED)

# The gateway's JSON mapping against protobuf's own (server/http/json_parse.cc, json_print.cc).
gradserve_test(http_json_parse_test gradserve::http)
gradserve_test(http_json_print_test gradserve::http nlohmann_json::nlohmann_json)
# The gateway stopping the work of a client that hung up (server/http/client_gone.h).
gradserve_test(http_client_gone_test gradserve::http gradserve_test_server_process PkgConfig::TEST_HTTPLIB)
gradserve_test(http_test gradserve::proto gradserve_test_server_process PkgConfig::TEST_HTTPLIB nlohmann_json::nlohmann_json)
gradserve_test(http_metrics_test gradserve::proto gradserve_test_server_process PkgConfig::TEST_HTTPLIB nlohmann_json::nlohmann_json)

# The page in Debian's headless Chromium via puppeteer-core (scripts/setup runs `npm ci` in
# tests/browser); the screenshot of the seed case stays in the build directory.
# Without node (e.g. in the image's build stage, which runs no ctest) the test fails when run.
find_program(GRADSERVE_NODE node)
if(NOT GRADSERVE_NODE)
  set(GRADSERVE_NODE node)
endif()
add_test(NAME verifier_page_browser_test
  COMMAND ${GRADSERVE_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/browser/page_test.mjs
          $<TARGET_FILE:gradserve-server> ${CMAKE_CURRENT_BINARY_DIR}/verifier_page_seed.png)
set_tests_properties(verifier_page_browser_test PROPERTIES TIMEOUT 180 LABELS browser)

# The HTTP side of scripts/bench-service's comparison: not a test, a load generator.
add_executable(gradserve_http_bench http_bench.cc)
target_link_libraries(gradserve_http_bench PRIVATE PkgConfig::TEST_HTTPLIB absl::flags absl::flags_parse absl::strings Threads::Threads)
