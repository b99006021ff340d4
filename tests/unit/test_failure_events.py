"""A job that died says why: reason, redacted log tail and its source in the event, and the
failures counter by reason, every reason at zero from the start."""

from __future__ import annotations

import orjson
import pytest

from monitor.core.failure import REASONS
from monitor.core.jobs import JobState
from monitor.output.redact import LOG_TAIL_BYTES
from monitor.simulator.failures import FAKE_SECRETS
from tests.rig import Rig

S = JobState


@pytest.mark.parametrize("reason", [r for r in REASONS if r != "unknown"])
async def test_a_job_that_dies_says_why_without_a_secret(reason: str) -> None:
    rig = Rig(jobs=20)
    rig.world.failure_mix = ((reason, 1),)
    await rig.poll()
    for r in REASONS:
        assert rig.sample("dli_batch_job_failures_total", queue="etl", reason=r) == 0
    victim = rig.active()
    rig.world.set_state(victim, S.DEAD)
    new = rig.world.submit("etl").id
    rig.world.set_state(new, S.DEAD)
    rig.clock.advance(30)
    logs = await rig.poll()
    dead = {e["job_id"]: e for e in logs if e.get("to_state") == "dead" or e.get("state") == "dead"}
    assert set(dead) == {victim, new}, "the transition and the job found dead"
    for event in dead.values():
        assert event["reason"] == reason
        assert event["log_source"] == "list"
        tail = event["log_tail"]
        assert tail and all(isinstance(line, str) for line in tail)
        assert len("".join(tail).encode()) <= LOG_TAIL_BYTES
        text = orjson.dumps(event).decode()
        assert not [s for s in FAKE_SECRETS if s in text], "redacted before it left"
    assert rig.sample("dli_batch_job_failures_total", queue="etl", reason=reason) == 2


async def test_a_job_that_died_without_a_word_is_unknown() -> None:
    rig = Rig(jobs=20)
    rig.world.failure_mix = (("unknown", 1),)
    await rig.poll()
    victim = rig.active()
    rig.world.set_state(victim, S.DEAD)
    rig.clock.advance(30)
    (event,) = [e for e in await rig.poll() if e.get("to_state") == "dead"]
    assert (event["reason"], event["log_source"]) == ("unknown", "none")
    assert rig.sample("dli_batch_job_failures_total", queue="etl", reason="unknown") == 1


async def test_other_events_carry_no_failure_fields() -> None:
    rig = Rig(jobs=20)
    await rig.poll()
    rig.world.set_state(rig.active(), S.SUCCESS)
    rig.clock.advance(30)
    (event,) = [e for e in await rig.poll() if e["event"] == "job.transition"]
    assert "reason" not in event and "log_tail" not in event


@pytest.mark.parametrize(
    ("line", "kept", "gone"),
    [
        ("spark.hadoop.fs.obs.secret.key=AbC123xyz done", "secret.key=*** done", "AbC123xyz"),
        ("--conf spark.hadoop.fs.obs.access.key=HPUAXXXX", "access.key=***", "HPUAXXXX"),
        ("password: hunter2, user: bob", "password: ***, user: bob", "hunter2"),
        ("jdbc:postgresql://etl:s3cr3t@db:5432/x", "jdbc:postgresql://***@db", "s3cr3t"),
        ("Authorization: SDK-HMAC-SHA256 Access=AK, Signature=abc", "Authorization: ***", "abc"),
        ("key QWERTYUIOPASDFGHJKLZ used", "key *** used", "QWERTYUIOPASDFGHJKLZ"),
    ],
)
def test_what_looks_like_a_credential_is_redacted(line: str, kept: str, gone: str) -> None:
    from monitor.output.redact import redact_secrets

    redacted = redact_secrets(line)
    assert kept in redacted and gone not in redacted


def test_the_tail_keeps_the_last_records_in_order_within_its_bounds() -> None:
    from monitor.output.redact import LOG_LINE_BYTES, log_tail

    records = [f"record {i} " + "é" * 400 for i in range(20)]
    tail = log_tail(records)
    numbers = [int(line.split()[1]) for line in tail]
    assert numbers[-1] == 19 and numbers == sorted(numbers), "the last ones, in order"
    assert all(len(line.encode()) <= LOG_LINE_BYTES + len("…".encode()) for line in tail)
    assert len("".join(tail).encode()) <= LOG_TAIL_BYTES
    assert log_tail([]) == []


def test_the_simulator_s_failure_mix_is_read_and_drawn_by_weight() -> None:
    from monitor.simulator.failures import EMPTY_LOG, FAILURE_LOGS, parse_mix, pick_log

    assert parse_mix("oom=3, killed") == (("oom", 3), ("killed", 1))
    for bad, why in [("bogus", "unknown failure reason"), ("oom=x", "whole number"), ("", "no")]:
        with pytest.raises(ValueError, match=why):
            parse_mix(bad)
    drawn = [pick_log(f"job-{n}", (("oom", 3), ("killed", 1))) for n in range(400)]
    oom = sum(1 for log in drawn if log in FAILURE_LOGS["oom"])
    assert sum(1 for log in drawn if log in FAILURE_LOGS["killed"]) == 400 - oom
    assert 240 <= oom <= 360, "about three in four"
    assert pick_log("x", (("oom", 0),)) == EMPTY_LOG
