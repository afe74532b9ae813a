# Tests of the gradserve CLI (client/): unit tests of gradserve::client, and CLI tests that run
# the `gradserve` binary against a real gradserve-server (started by ServerProcess).
gradserve_test(client_inputs_test gradserve::client GTest::gmock)
gradserve_test(client_output_test gradserve::client GTest::gmock)
gradserve_test(client_args_test gradserve::client GTest::gmock)
gradserve_test(client_requests_test gradserve::client GTest::gmock)
gradserve_test(client_bench_test gradserve::client GTest::gmock)

