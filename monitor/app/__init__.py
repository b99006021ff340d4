"""The application: configuration, targets and shards, the daemon's assembly and lifetime, the
HTTP server, ``check``, and signal handling from the first instant of the process."""
