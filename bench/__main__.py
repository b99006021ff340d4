"""``python -m bench``: dli-monitor's costs, each against a floor measured in the same run.

Runs the simulator in a subprocess on loopback (so its CPU is not counted as ours), prints a
table, and ends with one JSON line of every figure. ``--smoke`` runs tiny sizes, for CI.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor

import orjson

from bench import memory
from bench.common import (
    best,
    figures,
    row,
)
from bench.daemon import bench_as_run
from bench.listing import bench_listing
from bench.memory import pages_of
from bench.polling import bench_requests_per_poll, bench_steady
from bench.render import bench_render
from bench.targets import bench_targets
from monitor.core.snapshot import JobSnapshot, Observation
from monitor.dli.models import parse_list_page


def bench_parse_diff(jobs: int) -> None:
    print(f"\n1. parse + diff of {jobs:,} job records (pages of 100)")
    pages = pages_of(jobs)
    floor = best(lambda: [orjson.loads(p) for p in pages])
    stdlib = best(lambda: [json.loads(p) for p in pages])
    parse = best(lambda: [parse_list_page(p) for p in pages])
    listed = {j.id: j for p in pages for j in parse_list_page(p).jobs}
    previous = JobSnapshot.baseline(listed.values(), now_ms=0)

    def parse_and_diff() -> None:
        fresh = {j.id: j for p in pages for j in parse_list_page(p).jobs}
        previous.diff(Observation(fresh), now_ms=1).snapshot.summary  # noqa: B018

    total = best(parse_and_diff, repeat=3)
    per = total / jobs
    row("floor: orjson.loads of the same pages", f"{floor / jobs * 1e9:.0f} ns/rec", "1.00x")
    row(
        "json.loads (stdlib) of the same pages",
        f"{stdlib / jobs * 1e9:.0f} ns/rec",
        f"{stdlib / floor:.2f}x",
    )
    row("parse_list_page", f"{parse / jobs * 1e9:.0f} ns/rec", f"{parse / floor:.2f}x")
    row(
        "parse + diff + summary",
        f"{per * 1e9:.0f} ns/rec",
        f"{total / floor:.2f}x",
        f"{jobs / total:,.0f} records/s; target 0.8x",
    )
    figures.update(
        parse_ns_per_record=round(parse / jobs * 1e9),
        parse_diff_ns_per_record=round(per * 1e9),
        parse_diff_vs_orjson=round(total / floor, 2),
        orjson_ns_per_record=round(floor / jobs * 1e9),
        json_loads_vs_orjson=round(stdlib / floor, 2),
    )


def bench_memory(jobs: int) -> None:
    print(f"\n4. memory per tracked job ({jobs:,} jobs)")
    spawn = multiprocessing.get_context("spawn")
    for label, active, key in (
        ("every state alike", None, ""),
        ("500 active, the rest history", 500, "_history"),
    ):
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            m = pool.submit(memory.held, jobs, active).result()
        row(
            f"{label} ({m['active']:,.0f} active)",
            f"{m['traced']:.0f} B/job",
            f"{m['traced'] / m['floor']:.2f}x",
            f"RSS {m['rss']:.0f} B/job; floor (ids in a dict) {m['floor']:.0f} B/job",
        )
        figures[f"bytes_per_job_tracemalloc{key}"] = round(m["traced"])
        figures[f"bytes_per_job_rss{key}"] = round(m["rss"])
        figures[f"bytes_per_job_vs_floor{key}"] = round(m["traced"] / m["floor"], 2)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks it runs")
    parser.add_argument(
        "--as-run",
        action="store_true",
        help="only the figures of the daemon as it runs (A-D; about 3 minutes)",
    )
    parser.add_argument(
        "--history",
        type=int,
        metavar="N",
        help="only figure 6, with N finished jobs (e.g. 1000000: about 2 minutes)",
    )
    args = parser.parse_args()
    if args.history:
        bench_requests_per_poll(args.history, 500, rounds=4)
        print("\n" + json.dumps(figures, sort_keys=True))
        return
    small = args.smoke
    print(f"dli-monitor bench ({'smoke' if small else 'full'}) on {os.cpu_count()} cores")
    bench_as_run(small)
    if args.as_run:
        print("\n" + json.dumps(figures, sort_keys=True))
        return
    bench_parse_diff(2_000 if small else 100_000)
    bench_listing([1_000] if small else [10_000, 100_000], with_sdk=True)
    bench_memory(2_000 if small else 100_000)
    bench_render(20 if small else 200)
    bench_steady(5 if small else 50, 100 if small else 2_000, 2 if small else 20)
    bench_requests_per_poll(2_000 if small else 100_000, 50 if small else 500)
    bench_targets(2 if small else 10, 5 if small else 100, 20 if small else 200, 2 if small else 5)
    print("\n" + json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
