# The soak test (tests/soak_test.cc): label "soak"; its length is $GRADSERVE_SOAK_SECONDS
# (default 30 s). CI: GRADSERVE_SOAK_SECONDS=120 ctest --test-dir build -L soak
# soak_drop_client is the client process the test starts and kills mid-call; the test runs it
# from the path compiled in.
add_executable(soak_drop_client soak_drop_client.cc soak_calls.cc)
target_link_libraries(soak_drop_client PRIVATE gradserve::proto absl::strings absl::str_format)
target_include_directories(soak_drop_client PRIVATE ${PROJECT_SOURCE_DIR})

add_executable(soak_test soak_test.cc soak_clients.cc soak_connections.cc soak_calls.cc
  soak_proc.cc)
target_link_libraries(soak_test PRIVATE gradserve::proto gradserve_test_server_process
  absl::strings absl::str_format GTest::gtest GTest::gtest_main)
target_include_directories(soak_test PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_definitions(soak_test PRIVATE
  GRADSERVE_SOAK_DROP_CLIENT="$<TARGET_FILE:soak_drop_client>")
add_dependencies(soak_test gradserve-server soak_drop_client)
add_test(NAME soak_test COMMAND soak_test)
set_tests_properties(soak_test PROPERTIES LABELS soak TIMEOUT 3600)
