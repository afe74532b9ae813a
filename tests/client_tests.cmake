# Tests of the gradserve CLI (client/): unit tests of gradserve::client, and CLI tests that run
# the `gradserve` binary against a real gradserve-server (started by ServerProcess).
gradserve_test(client_inputs_test gradserve::client GTest::gmock)
gradserve_test(client_json_test gradserve::client GTest::gmock)
gradserve_test(client_half_test gradserve::client GTest::gmock)
gradserve_test(client_output_test gradserve::client GTest::gmock)
gradserve_test(client_args_test gradserve::client GTest::gmock)
gradserve_test(client_requests_test gradserve::client GTest::gmock)
gradserve_test(client_bench_test gradserve::client GTest::gmock)
gradserve_test(client_test_util_test absl::status absl::statusor)  # the status assertions of tests/client_test_util.h

# End to end: the gradserve binary, run as a subprocess against a gradserve-server.
gradserve_test(client_cli_test gradserve::client gradserve_test_server_process
  gradserve_test_certificates GTest::gmock)
target_compile_definitions(client_cli_test PRIVATE GRADSERVE_CLI_BINARY="$<TARGET_FILE:gradserve>")
add_dependencies(client_cli_test gradserve gradserve-server)

# Messages, exit statuses and hints, against real servers (plaintext, TLS, a small message limit).
gradserve_test(client_cli_messages_test gradserve::client gradserve_test_server_process
  gradserve_test_certificates GTest::gmock)
target_compile_definitions(client_cli_messages_test PRIVATE GRADSERVE_CLI_BINARY="$<TARGET_FILE:gradserve>")
add_dependencies(client_cli_messages_test gradserve gradserve-server)

# float16/bfloat16 end to end, against the real server.
gradserve_test(client_half_cli_test gradserve::client gradserve_test_server_process GTest::gmock)
target_compile_definitions(client_half_cli_test PRIVATE GRADSERVE_CLI_BINARY="$<TARGET_FILE:gradserve>")
add_dependencies(client_half_cli_test gradserve gradserve-server)

# Chunked forward/backward (client/chunked.h) against the real server: chunks == one call.
gradserve_test(client_chunked_cli_test gradserve::client gradserve_test_server_process GTest::gmock util)
target_compile_definitions(client_chunked_cli_test PRIVATE GRADSERVE_CLI_BINARY="$<TARGET_FILE:gradserve>")
add_dependencies(client_chunked_cli_test gradserve gradserve-server)
