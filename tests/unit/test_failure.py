"""Why a job died: every rule from a real message, priority where two match, bounded time."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.failure import REASONS, RULES, classify
from monitor.simulator.failures import FAILURE_LOGS

CASES = [(reason, log) for reason, logs in FAILURE_LOGS.items() for log in logs]


@pytest.mark.parametrize(
    ("reason", "log"), CASES, ids=[f"{r}-{i}" for i, (r, _) in enumerate(CASES)]
)
def test_each_real_message_gets_its_reason(reason: str, log: tuple[str, ...]) -> None:
    assert classify(log) == reason


def test_every_reason_of_the_contract_has_a_rule_and_a_real_message() -> None:
    assert [reason for reason, _ in RULES] + ["unknown"] == list(REASONS)
    assert set(FAILURE_LOGS) == set(REASONS)


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        # Spark reports a missing input as an AnalysisException: the specific reason wins.
        (
            ["org.apache.spark.sql.AnalysisException: Path does not exist: obs://b/x"],
            "input_not_found",
        ),
        # A stage failure is classified by its inner reason first.
        (
            ["Job aborted due to stage failure: ... ExecutorLostFailure (executor 1 exited)"],
            "executor_lost",
        ),
        (["Job aborted due to stage failure: ... java.lang.OutOfMemoryError: GC overhead"], "oom"),
        # A launch flag names an error without reporting one.
        (["-XX:OnOutOfMemoryError='kill %p' -XX:+HeapDumpOnOutOfMemoryError", "done"], "unknown"),
        # An exit code alone says nothing; with a memory line it is the kill that line explains.
        (["Exit code is 143"], "unknown"),
        (["Exit code is 137", "is running beyond virtual memory limits"], "oom"),
        # The section headers come with and without a leading newline.
        (
            ["\nstdout: ", "\nstderr: ModuleNotFoundError: No module named 'x'"],
            "dependency_missing",
        ),
        ([], "unknown"),
        (["stdout: ", "stderr: ", "YARN Diagnostics: "], "unknown"),
    ],
)
def test_priority_and_spellings(records: list[str], reason: str) -> None:
    assert classify(records) == reason


NEAR_MISSES = st.sampled_from(
    [
        "java.lang.OutOfMemory", "running beyond ", "Container killed by YARN for exceeding ",
        "Lost executor ", "Remote RPC client", "Initial job has not accepted", "Path does not",
        "Permission ", "ClassNotFound", "Futures timed", "Session stopped by", "killed by ",
        "Exception in thread ", "Traceback (most recent", "-XX:OnOutOfMemoryError=", "a" * 50,
        " ", "\n", "DLI.001",
    ]
)  # fmt: skip


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(NEAR_MISSES, min_size=1, max_size=4000))
def test_adversarial_logs_are_classified_and_never_raise(parts: list[str]) -> None:
    records = ["".join(parts)] * 3
    assert classify(records) in REASONS


#: the regex parser's own tree (no stubs; read as it is): what the check below walks
_PARSER: Any = importlib.import_module("re._parser")
_C: Any = importlib.import_module("re._constants")
_REPEATS = (_C.MAX_REPEAT, _C.MIN_REPEAT, _C.POSSESSIVE_REPEAT)


def _repeats_inside(tree: Any, *, inside: bool) -> bool:
    """Whether a parsed pattern has a repeat within a repeat (what backtracks exponentially)."""
    for op, arg in tree:
        if op in _REPEATS:
            nested = inside or _repeats_inside(arg[2], inside=True)
        elif op is _C.SUBPATTERN:
            nested = _repeats_inside(arg[3], inside=inside)
        elif op is _C.BRANCH:
            nested = any(_repeats_inside(branch, inside=inside) for branch in arg[1])
        else:
            nested = False
        if nested:
            return True
    return False


def test_the_backtracking_check_sees_a_nested_repeat() -> None:
    assert _repeats_inside(_PARSER.parse(r"(a+)+b"), inside=False)
    assert _repeats_inside(_PARSER.parse(r"x(?:y|(?:\w*z)*)"), inside=False)
    assert not _repeats_inside(_PARSER.parse(r"Lost executor \d+|\bDLI\.0012\b"), inside=False)


@pytest.mark.parametrize(("reason", "pattern"), RULES, ids=[r for r, _ in RULES])
def test_no_rule_can_backtrack_catastrophically(reason: str, pattern: re.Pattern[str]) -> None:
    """Bounded time by construction rather than by a stopwatch: no quantifier inside another,
    so each rule is linear in the text, which is cut to MAX_TEXT characters."""
    assert not _repeats_inside(_PARSER.parse(pattern.pattern), inside=False), reason
