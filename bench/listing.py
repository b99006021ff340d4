"""Figures 2 and 3: a full listing through our client, through the official SDK, and as bare
signed requests (the floor), against the same simulator in the same run."""

from __future__ import annotations

import aiohttp
import anyio

from bench.common import (
    AK,
    LATENCY,
    LISTING_CONCURRENCY,
    PROJECT,
    SK,
    BareClient,
    figures,
    make_client,
    measure,
    row,
    simulator,
)
from monitor.dli.client import RetryBudget
from monitor.poll.paging import Query, list_all


async def _ours(url: str, queues: list[str]) -> int:
    async with aiohttp.ClientSession() as session:
        client = make_client(session, url, concurrency=LISTING_CONCURRENCY)
        requests = 0
        for queue in queues:
            # Steady state: the daemon pages by total once a pass has shown it matches the rows.
            listing = await list_all(
                client.for_poll(RetryBudget()), Query(queue), page_size=100, trust_total=True
            )
            requests += listing.requests
        return requests


def sdk_listing(url: str, queue: str) -> int:
    """The listing as a user would script it with the official SDK: its own paging loop."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkdli.v1 import DliClient, ListSparkJobsRequest

    client = (
        DliClient.new_builder()
        .with_credentials(BasicCredentials(AK, SK, PROJECT))
        .with_endpoints([url])
        .build()
    )
    offset = requests = 0
    while True:
        resp = client.list_spark_jobs(
            ListSparkJobsRequest(queue_name=queue, _from=offset, size=100)
        )
        requests += 1
        offset += len(resp.sessions or [])
        if not resp.sessions or offset >= resp.total:
            return requests


async def bare_pages(url: str, queue: str, pages: int) -> int:
    """The same pages as a full listing, signed and read at the same concurrency."""
    async with aiohttp.ClientSession() as session, anyio.create_task_group() as tg:
        bare = BareClient(session, url, LISTING_CONCURRENCY)
        for page in range(pages):
            query = (("from", str(page * 100)), ("queue_name", queue), ("size", "100"))
            tg.start_soon(bare.get, query)
    return pages


def bench_listing(sizes: list[int], with_sdk: bool) -> None:
    for jobs in sizes:
        print(f"\n2. full listing of {jobs:,} jobs, {LATENCY * 1e3:.0f} ms latency per request")
        with simulator(jobs, 1, LATENCY) as url:
            wall, cpu, requests = measure(lambda: anyio.run(_ours, url, ["q0"]))
            assert isinstance(requests, int)
            pages = -(-jobs // 100)
            fwall, fcpu, _ = measure(lambda: anyio.run(bare_pages, url, "q0", pages))  # noqa: B023 - called at once
            ideal = requests * LATENCY / LISTING_CONCURRENCY
            row(
                "ideal: requests x latency / concurrency",
                f"{ideal:.2f} s",
                "1.00x",
                f"{requests} requests, {LISTING_CONCURRENCY} in flight",
            )
            row(
                "floor: the same pages signed and read, no more",
                f"{fwall:.2f} s",
                f"{fwall / ideal:.2f}x",
                f"CPU {fcpu:.2f} s; the rest of ideal is the server's own time",
            )
            row(
                "dli-monitor",
                f"{wall:.2f} s",
                f"{wall / ideal:.2f}x",
                f"{wall / fwall:.2f}x the floor; CPU {cpu:.2f} s",
            )
            figures[f"list_{jobs}_floor_wall_s"] = round(fwall, 3)
            figures[f"list_{jobs}_vs_floor"] = round(wall / fwall, 2)
            figures[f"list_{jobs}_wall_s"] = round(wall, 3)
            figures[f"list_{jobs}_vs_ideal"] = round(wall / ideal, 2)
            figures[f"list_{jobs}_cpu_s"] = round(cpu, 3)
            figures[f"list_{jobs}_requests"] = requests
            if with_sdk:
                print("3. the same listing with the official SDK (huaweicloudsdkdli)")
                swall, scpu, sreq = measure(lambda: sdk_listing(url, "q0"))
                row(
                    "huaweicloudsdkdli, sequential paging",
                    f"{swall:.2f} s",
                    f"{swall / wall:.1f}x slower",
                    f"CPU {scpu:.2f} s = {scpu / cpu:.1f}x ours; {sreq} requests",
                )
                row(
                    "CPU per job listed: SDK / dli-monitor",
                    f"{scpu / jobs * 1e6:.1f} µs",
                    f"{cpu / jobs * 1e6:.1f} µs",
                    f"floor (signed and read only) {fcpu / jobs * 1e6:.1f} µs",
                )
                figures[f"sdk_list_{jobs}_cpu_us_per_job"] = round(scpu / jobs * 1e6, 2)
                figures[f"list_{jobs}_cpu_us_per_job"] = round(cpu / jobs * 1e6, 2)
                figures[f"sdk_list_{jobs}_wall_ratio"] = round(swall / wall, 2)
                figures[f"sdk_list_{jobs}_cpu_ratio"] = round(scpu / cpu, 2)
