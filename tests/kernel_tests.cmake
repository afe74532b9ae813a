# The math tests run once per row kernel the CPU supports (kernel_test_main.cc forces each in
# turn), and the dispatch test checks which kernel runs.
function(gradserve_kernel_test name)
  add_executable(${name} ${name}.cc kernel_test_main.cc)
  target_link_libraries(${name} PRIVATE gradserve::lib GTest::gtest)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_definitions(${name} PRIVATE GRADSERVE_TEST_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES ENVIRONMENT "GRADSERVE_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()

gradserve_kernel_test(softmax_test)
gradserve_kernel_test(cross_entropy_test)
gradserve_kernel_test(cross_entropy_validation_test)
gradserve_kernel_test(cross_entropy_golden_test)
gradserve_kernel_test(verify_test)
gradserve_kernel_test(row_pipeline_test)
gradserve_test(kernel_dispatch_test gradserve::lib)
