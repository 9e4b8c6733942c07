"""Helpers shared by the test suites: real test images built from the host's static busybox."""
