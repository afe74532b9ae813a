# Bounded errors, start-up checks (--help, --version, ports, descriptors), deadlines observed on
# the server, and the HTTP/2 rapid-reset probe (label "hardening").
# (server_test.cc split: health, reflection, auth, shutdown and connections)
gradserve_test(server_lifecycle_test gradserve::proto gradserve_test_protos gradserve_test_server_process)
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

# HTTP/2 rapid reset (CVE-2023-44487): 6 s of one attacking connection on loopback while
# `gradserve bench` makes legitimate calls; fails if more than 1% fail or their p99 passes 3 s.
# Run alone, so that the soak test's load does not stand in for the attack's.
# ctest -L hardening runs it.
add_test(NAME rapid_reset_probe
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/rapid_reset_probe.py
    --server $<TARGET_FILE:gradserve-server> --client $<TARGET_FILE:gradserve> --seconds 5)
set_tests_properties(rapid_reset_probe PROPERTIES LABELS hardening TIMEOUT 120 RUN_SERIAL TRUE)
