"""The state file: the codec between snapshots and JSON, and the file that survives restarts."""
