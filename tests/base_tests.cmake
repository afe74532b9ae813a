# Tests of base/ (header-only helpers shared by lib/, server/ and client/).
gradserve_test(base_test gradserve::base)
