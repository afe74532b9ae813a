# Half precision (FLOAT16 / BFLOAT16): the conversions and the blocked adapter in lib/, and the
# real server answering half-precision requests.
gradserve_test(half_test gradserve::lib)
gradserve_test(half_rows_test gradserve::lib)
gradserve_test(half_golden_test gradserve::lib)
gradserve_test(server_half_test gradserve::proto gradserve::lib gradserve_test_server_process)
