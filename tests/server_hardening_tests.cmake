# Bounded errors, start-up checks (--help, --version, ports, descriptors), deadlines observed on
# the server, and the HTTP/2 rapid-reset probe (label "hardening").
gradserve_test(status_util_test gradserve::server)
gradserve_test(listener_test gradserve::server)
gradserve_test(test_util_test gradserve::lib)
gradserve_test(server_startup_test gradserve::proto gradserve::base gradserve_test_server_process)

target_compile_definitions(server_startup_test PRIVATE
  GRADSERVE_SERVER_BINARY="$<TARGET_FILE:gradserve-server>" GRADSERVE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
add_dependencies(server_startup_test gradserve-server)
gradserve_test(server_deadline_test gradserve::proto gradserve_test_server_process)
target_compile_definitions(server_deadline_test PRIVATE GRADSERVE_SERVER_BINARY="$<TARGET_FILE:gradserve-server>")
add_dependencies(server_deadline_test gradserve-server)
