# The verifier at scale: its O(batch · classes) numeric reference against a slow one, and
# VerifyGradient through the real server.
gradserve_test(verify_numeric_test gradserve::lib)
gradserve_test(verify_mistakes_test gradserve::lib)
gradserve_test(server_verify_test gradserve::proto gradserve_test_server_process)
