"""Dataset readers and writers, binarisation and synthetic generators (lvm_core never imports this package)."""
