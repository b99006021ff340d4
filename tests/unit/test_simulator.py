"""The simulator speaks the documented API faithfully, and its gateway rejects bad signatures."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import pairwise
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr
from yarl import URL

from monitor.core.jobs import JobState
from monitor.dli.auth import AkSkSigner, OutgoingRequest, canonical_query
from monitor.dli.models import parse_list_page
from monitor.simulator import Simulator, World, running_simulator
from monitor.simulator.world import Lifecycle
from tests.harness import STILL

P = "simproject"
NOW = 1_795_000_000_000


def world(**kw: Any) -> World:
    values: dict[str, Any] = {
        "seed": 1,
        "now_ms": int(time.time() * 1000),
        "initial_jobs": 40,
        "lifecycle": STILL,
    }
    return World(P, ("etl", "adhoc"), **{**values, **kw})


@asynccontextmanager
async def serve(sim: Simulator) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with running_simulator(sim) as url, aiohttp.ClientSession() as session:
        yield session, url


async def get(session: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with session.get(url, params=params) as resp:
        return resp.status, orjson.loads(await resp.read())


def test_world_starts_with_every_state_in_every_queue() -> None:
    w = world()
    for queue in w.queues:
        assert all(count > 0 for count in w.counts(queue).values()), w.counts(queue)


def test_world_is_reproducible_from_its_seed() -> None:
    a, b = world(now_ms=NOW, lifecycle=Lifecycle()), world(now_ms=NOW, lifecycle=Lifecycle())
    a.advance(NOW + 120_000)
    b.advance(NOW + 120_000)
    assert [(e.job_id, e.state) for e in a.history] == [(e.job_id, e.state) for e in b.history]


def test_lifecycles_follow_the_state_machine() -> None:
    w = world(now_ms=NOW, lifecycle=Lifecycle(arrival_interval=2.0))
    w.advance(NOW + 600_000)
    lives: dict[str, list[JobState]] = {}
    for entry in w.history:
        lives.setdefault(entry.job_id, []).append(entry.state)
    allowed = {
        (JobState.STARTING, JobState.RUNNING),
        (JobState.STARTING, JobState.DEAD),
        (JobState.RUNNING, JobState.SUCCESS),
        (JobState.RUNNING, JobState.DEAD),
        (JobState.RUNNING, JobState.RECOVERING),
        (JobState.RECOVERING, JobState.RUNNING),
        (JobState.RECOVERING, JobState.DEAD),
    }
    for life in lives.values():
        assert all(pair in allowed for pair in pairwise(life)), life
    assert any(JobState.RECOVERING in life for life in lives.values())


async def test_list_pages_and_filters() -> None:
    sim = Simulator(world())
    async with serve(sim) as (session, url):
        base = f"{url}/v2.0/{P}/batches"
        status, doc = await get(session, base, queue_name="etl", size="7")
        assert status == 200 and doc["from"] == 0 and len(doc["sessions"]) == 7
        total = doc["total"]
        row = doc["sessions"][0]
        assert {
            "id",
            "state",
            "appId",
            "log",
            "sc_type",
            "cluster_name",
            "create_time",
            "duration",
            "queue",
            "update_time",
            "name",
            "owner",
        } <= row.keys()
        assert isinstance(row["create_time"], int) and isinstance(row["duration"], int)
        ids: list[str] = []
        for offset in range(0, total, 7):
            _, page = await get(session, base, queue_name="etl", size="7", **{"from": str(offset)})
            ids += [r["id"] for r in page["sessions"]]
        assert len(ids) == len(set(ids)) == total
        created = [
            r["create_time"]
            for r in (await get(session, base, queue_name="etl", size="100"))[1]["sessions"]
        ]
        assert created == sorted(created, reverse=True), "newest first by default"
        _, asc = await get(session, base, queue_name="etl", size="100", order="CREATE_TIME_ASC")
        assert [r["create_time"] for r in asc["sessions"]] == sorted(created)
        _, running = await get(session, base, state="running", size="1")
        assert running["total"] == sum(
            sim.world.counts(q)[JobState.RUNNING] for q in ("etl", "adhoc")
        )
        assert len(running["sessions"]) == 1 and running["sessions"][0]["state"] == "running"
        one = ids[3]
        _, by_id = await get(session, base, **{"job-id": one})
        assert [r["id"] for r in by_id["sessions"]] == [one]
        middle = sorted(created)[len(created) // 2]
        _, recent = await get(session, base, queue_name="etl", start=str(middle), size="100")
        assert all(r["create_time"] >= middle for r in recent["sessions"])
        _, old = await get(session, base, queue_name="etl", end=str(middle), size="100")
        assert recent["total"] + old["total"] == total + 1  # `middle` itself is in both
        assert parse_list_page(orjson.dumps(doc)).total == total


async def test_detail_state_and_error_bodies() -> None:
    sim = Simulator(world())
    async with serve(sim) as (session, url):
        base = f"{url}/v2.0/{P}/batches"
        job = next(iter(sim.world.jobs.values()))
        status, detail = await get(session, f"{base}/{job.id}")
        assert status == 200 and detail["id"] == job.id and detail["state"] == job.state.value
        status, state = await get(session, f"{base}/{job.id}/state")
        assert status == 200 and state == {"id": job.id, "state": job.state.value}
        status, err = await get(session, f"{base}/00000000-0000-4000-8000-000000000000")
        assert status == 400 and err["error_code"] == "DLI.0002"
        status, err = await get(session, f"{base}/not-a-uuid")
        assert status == 400 and err["error_code"] == "DLI.0001"
        for bad in ({"size": "-1"}, {"from": "x"}, {"state": "paused"}, {"order": "RANDOM"}):
            status, err = await get(session, base, **bad)
            assert status == 400 and err["error_code"] == "DLI.0001" and err["error_msg"], bad
        status, err = await get(session, f"{url}/v2.0/otherproject/batches")
        assert status == 400 and err["error_code"] == "DLI.0001"


async def test_gateway_accepts_good_signatures_and_rejects_tampering() -> None:
    sim = Simulator(world(), credentials=("AK1", "the-secret"))
    signer = AkSkSigner.from_keys("AK1", SecretStr("the-secret"), project_id=P)
    async with serve(sim) as (session, url):
        host = URL(url).raw_authority
        path = f"/v2.0/{P}/batches"
        query = (("queue_name", "etl"), ("size", "5"))
        headers = await signer.headers(OutgoingRequest("GET", host, path, query))

        async def send(q: tuple[tuple[str, str], ...], h: dict[str, str]) -> tuple[int, Any]:
            target = URL(f"{url}{path}?{canonical_query(q)}", encoded=True)
            async with session.get(target, headers=h) as resp:
                return resp.status, orjson.loads(await resp.read())

        assert (await send(query, headers))[0] == 200
        changed_query = (("queue_name", "adhoc"), ("size", "5"))
        status, err = await send(changed_query, headers)
        assert status == 401 and err["error_code"] == "APIGW.0301"
        assert (await send(query, {**headers, "X-Sdk-Date": "20200101T000000Z"}))[0] == 401
        wrong = AkSkSigner.from_keys("AK1", SecretStr("not-the-secret"), project_id=P)
        assert (await send(query, await wrong.headers(OutgoingRequest("GET", host, path, query))))[
            0
        ] == 401
        assert (await send(query, {}))[0] == 401
        skewed = AkSkSigner.from_keys(
            "AK1", SecretStr("the-secret"), project_id=P, clock=lambda: time.time() - 3600
        )
        status, err = await send(
            query, await skewed.headers(OutgoingRequest("GET", host, path, query))
        )
        assert status == 401 and "expired" in err["error_msg"]


async def test_the_gateway_throttles_the_request_one_over_its_limit_in_a_second() -> None:
    world = World("p1", ("etl",), seed=1, now_ms=int(time.time() * 1000), initial_jobs=3)
    sim = Simulator(world, gateway_limit=2)
    async with running_simulator(sim) as url, aiohttp.ClientSession() as session:
        answers = []
        for _ in range(3):
            async with session.get(f"{url}/v2.0/p1/batches") as resp:
                answers.append((resp.status, (await resp.json()).get("error_code")))
    assert answers == [(200, None), (200, None), (429, "APIG.0308")]
    assert sim.gateway_throttled == 1


def test_churn_moves_rows_as_often_as_jobs_arrive_and_never_grows_the_world() -> None:
    """Churn during paging (a fault of the chaos tests) shifts rows: a job deleted behind the
    pager, the next arrival at the front. It must not add jobs of its own: a world growing with
    every list request made late polls of the chaos suite take hundreds of requests."""
    lifecycle = Lifecycle(starting=(1, 2), running=(2, 6), recovering=(1, 2), arrival_interval=2.0)
    churned = World(P, ("etl",), seed=3, now_ms=NOW, lifecycle=lifecycle, history_limit=15)
    calm = World(P, ("etl",), seed=3, now_ms=NOW, lifecycle=lifecycle, history_limit=15)
    sizes: list[int] = []
    moved = 0
    for step in range(1, 2001):  # 100 s, one list request every 50 ms
        for w in (churned, calm):
            w.advance(NOW + step * 50)
        front = churned.select(queue="etl")[0].id
        churned.churn("etl")
        moved += churned.select(queue="etl")[0].id != front
        sizes.append(len(churned.jobs) - len(calm.jobs))
    arrivals = 100 / lifecycle.arrival_interval
    assert arrivals / 2 < moved < arrivals * 2, "rows move about as often as jobs arrive"
    assert max(sizes) <= 15, (
        f"no bigger than the calm world but for the pulled-in arrivals: {sizes}"
    )
    assert len(churned.jobs) < 60
