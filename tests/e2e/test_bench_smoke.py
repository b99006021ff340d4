"""The benchmark must keep running: a smoke run with tiny sizes (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys

import orjson


def test_bench_smoke_prints_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = orjson.loads(result.stdout.strip().splitlines()[-1])
    for key in (
        "parse_diff_vs_orjson",
        "list_1000_vs_ideal",
        "sdk_list_1000_wall_ratio",
        "sdk_list_1000_cpu_ratio",
        "bytes_per_job_tracemalloc",
        "render_ms_200_queues",
        "steady_cpu_pct_at_30s",
        "requests_incremental_share",
        "targets_steady_cpu_s",
        "targets_tracked_jobs",
        # as a user runs it (bench/daemon.py)
        "as_run_requests_per_round_filtered",
        "as_run_requests_per_round_livy",
        "as_run_requests_per_round_project",
        "as_run_cold_vs_sdk_wall",
        "as_run_rss_bytes_per_job",
        "as_run_polls_to_settled_behaviour",
    ):
        assert isinstance(figures[key], int | float) and figures[key] > 0, key
