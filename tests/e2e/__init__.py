"""Slow tests (marked ``slow`` by tests/conftest.py): the daemon against the simulator over
loopback, subprocesses, real Prometheus, podman, long property runs."""
