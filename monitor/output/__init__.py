"""Everything the daemon says: JSON events (structlog), the metric families and their one
writer, level series read from snapshots, the bytes of ``/metrics``, and redaction of whatever
user-controlled text reaches them."""
