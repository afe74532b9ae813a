# The one-pass entry point and the library's validator; both run once per row kernel (see
# kernel_tests.cmake, whose gradserve_kernel_test this uses).
gradserve_kernel_test(loss_pass_test)
gradserve_kernel_test(loss_check_test)
