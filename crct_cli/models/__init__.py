"""Networks of crct: the shared Inception-ResNet trunk, FLL, FV, BT and FADeNN's denoisers."""
