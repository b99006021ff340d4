"""Fast tests: pure rules, the real client over the in-memory transport, one process."""
