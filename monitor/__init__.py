"""dli-monitor: watch Huawei Cloud DLI Spark batch jobs.

Lists every job of each configured queue, diffs its state against an in-memory snapshot, writes one
JSON event per state change and serves per-queue, per-state metrics for Prometheus.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
