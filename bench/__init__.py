"""Benchmarks of dli-monitor against floors measured in the same run."""
