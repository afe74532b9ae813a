# Half precision (FLOAT16 / BFLOAT16): the conversions and the blocked adapter in lib/, and the
# real server answering half-precision requests.
gradserve_test(half_test gradserve::lib)
gradserve_test(half_rows_test gradserve::lib)
gradserve_test(half_golden_test gradserve::lib)
gradserve_test(server_half_test gradserve::proto gradserve::lib gradserve_test_server_process)

if(GRADSERVE_BUILD_BENCHMARKS)
  add_executable(gradserve_half_bench half_bench.cc)
  target_link_libraries(gradserve_half_bench PRIVATE gradserve::lib benchmark::benchmark)
  target_include_directories(gradserve_half_bench PRIVATE ${PROJECT_SOURCE_DIR})
endif()
