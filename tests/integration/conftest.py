"""Fixtures shared by the integration tests of one area (the suite-wide ones are in tests/)."""

from tests.integration.netenv import net_env  # noqa: F401  (the CNI tests' data dir and image)
