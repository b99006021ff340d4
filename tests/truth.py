"""Compare a daemon's event stream with the simulator's ground truth.

Used by the end-to-end and fault tests: every reported state sequence per job must be an in-order
subsequence of its true one with no repeats (precision), and every true state that lasted long
enough to be seen by a poll must be reported (recall).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import orjson

from monitor.simulator.world import TruthEntry


def parse_events(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


@dataclass
class Verdict:
    reported: int = 0
    correct: int = 0
    expected: int = 0
    found: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.correct / self.reported if self.reported else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0

    def __str__(self) -> str:
        head = (
            f"precision {self.precision:.2%} ({self.correct}/{self.reported}), "
            f"recall {self.recall:.2%} ({self.found}/{self.expected})"
        )
        return head + "".join(f"\n  {p}" for p in self.problems[:20])


def compare(
    events: Iterable[dict[str, Any]],
    history: Sequence[TruthEntry],
    *,
    baseline_ms: int,
    end_ms: int,
    min_seen_ms: int | Mapping[str, int],
    blind: Sequence[tuple[int, int]] = (),
) -> Verdict:
    """Judge ``events`` against ``history``.

    ``baseline_ms``: when the daemon's first poll saw the world (states entered before it are the
    baseline, not reported); ``end_ms``: when the last poll saw it; ``min_seen_ms``: how long a
    state must last to be certainly seen by some poll, one bound or one per queue (measured:
    :mod:`tests.polltimes`; a queue it does not name takes the largest); ``blind``: (from, to)
    windows in which no daemon was polling (restarts), which do not count towards that.
    """
    truth: dict[str, list[TruthEntry]] = defaultdict(list)
    for entry in history:
        truth[entry.job_id].append(entry)
    reported: dict[str, list[str]] = defaultdict(list)
    verdict = Verdict()
    for event in events:
        name = event.get("event")
        if name == "job.discovered":
            reported[event["job_id"]].append(event["state"])
        elif name == "job.transition":
            seq = reported[event["job_id"]]
            if seq and seq[-1] != event["from_state"]:
                verdict.problems.append(
                    f"{event['job_id']}: from_state {event['from_state']} after {seq}"
                )
            seq.append(event["to_state"])
        elif name == "job.vanished":
            verdict.problems.append(f"{event['job_id']}: vanished, but no job is ever deleted here")
            verdict.reported += 1
    for job_id, states in reported.items():
        verdict.reported += len(states)
        life = [e.state.value for e in truth.get(job_id, [])]
        it = iter(life)
        ok = all(any(s == x for x in it) for s in states)
        dupes = any(a == b for a, b in pairwise(states))
        if ok and not dupes:
            verdict.correct += len(states)
        else:
            verdict.problems.append(f"{job_id}: reported {states}, true life {life}")
    bounds: Mapping[str, int] = {}
    if isinstance(min_seen_ms, Mapping):
        bounds, default_bound = min_seen_ms, max(min_seen_ms.values())
    else:
        default_bound = min_seen_ms
    for job_id, entries in truth.items():
        seen = reported.get(job_id, [])
        min_seen = bounds.get(entries[0].queue, default_bound)
        pos = 0
        last_visible: str | None = None
        for i, entry in enumerate(entries):
            until = entries[i + 1].at_ms if i + 1 < len(entries) else end_ms
            state = entry.state.value
            if entry.at_ms <= baseline_ms:
                if until > baseline_ms:
                    last_visible = state  # what the baseline poll saw (and does not report)
                continue
            hi = min(until, end_ms)
            lasted = (
                hi - entry.at_ms - sum(max(0, min(hi, b) - max(entry.at_ms, a)) for a, b in blind)
            )
            if entry.at_ms > end_ms or lasted < min_seen:
                continue  # too brief (or too late) for any poll to be sure to see it
            if state == last_visible:
                # running, an unseeable recovering, running again: to every poll that is one
                # stretch of running, whether the first stretch began before the baseline or not.
                continue
            last_visible = state
            verdict.expected += 1
            try:
                pos = seen.index(state, pos) + 1
                verdict.found += 1
            except ValueError:
                verdict.problems.append(
                    f"{job_id}: missed {state} at {entry.at_ms} lasting {lasted} ms; "
                    f"reported {seen}"
                )
    return verdict
