# The soak test (tests/soak_test.cc): label "soak"; its length is $GRADSERVE_SOAK_SECONDS
# (default 30 s). CI: GRADSERVE_SOAK_SECONDS=120 ctest --test-dir build -L soak
add_executable(soak_test soak_test.cc)
target_link_libraries(soak_test PRIVATE gradserve::proto gradserve_test_server_process
  GTest::gtest GTest::gtest_main)
target_include_directories(soak_test PRIVATE ${PROJECT_SOURCE_DIR})
add_dependencies(soak_test gradserve-server)
add_test(NAME soak_test COMMAND soak_test)
set_tests_properties(soak_test PROPERTIES LABELS soak TIMEOUT 3600)
