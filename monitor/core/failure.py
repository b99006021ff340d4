"""Why a job died: one reason from a fixed vocabulary, read from its last log records.

Pure. DLI's list rows and details carry ``log``, the job's last log records: Livy's batch log
(``stdout: …``, ``stderr: …``, ``YARN Diagnostics: …``). :func:`classify` matches the rules of
:data:`RULES` in order against them, first match wins, specific before generic (Spark reports a
missing input as ``AnalysisException: Path does not exist``: ``input_not_found``, not
``sql_error``). The reasons are contract (``shared/DESIGN.md``): users alert on them as label
values, so one may be added when a real message needs it, never renamed.

Bounded: the text matched is at most :data:`MAX_TEXT` characters (the records' ends, where the
reasons are), and no rule has nested or overlapping quantifiers, so no input makes a rule
backtrack more than linearly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

__all__ = [
    "MAX_TEXT",
    "REASONS",
    "RULES",
    "Failure",
    "classify",
    "explain",
    "log_records",
    "read_log",
]

#: the contract's vocabulary, in the order the rules try them (``unknown``: none matched)
REASONS = (
    "oom",
    "executor_lost",
    "resource_unavailable",
    "input_not_found",
    "permission_denied",
    "dependency_missing",
    "sql_error",
    "timeout",
    "killed",
    "app_error",
    "unknown",
)

#: characters of the log matched at most (the last ones: a failure is reported at the end)
MAX_TEXT = 16_384


def _rule(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


#: (reason, what marks it), in priority order; each pattern is copied from a real message
#: (Spark, YARN, Livy, DLI), and tests/unit/test_failure.py holds one such message per rule.
RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "oom",
        _rule(
            r"java\.lang\.OutOfMemoryError",
            r"running beyond (?:physical|virtual) memory limits",
            r"Container killed by YARN for exceeding (?:physical )?memory limits",
            r"\bMemoryError\b",
        ),
    ),
    (
        "executor_lost",
        _rule(
            r"ExecutorLostFailure",
            r"Lost executor \d+",
            r"Remote RPC client disassociated",
            r"Container (?:marked as failed|released on a \*lost\* node)",
        ),
    ),
    (
        "resource_unavailable",
        _rule(
            r"Initial job has not accepted any resources",
            r"No YARN application is found with tag",
            r"\bDLI\.0012\b",
            r"Insufficient (?:queue )?resources",
        ),
    ),
    (
        "input_not_found",
        _rule(
            r"FileNotFoundException",
            r"Path does not exist",
            r"\bNoSuchKey\b",
        ),
    ),
    (
        "permission_denied",
        _rule(
            r"AccessControlException",
            r"Permission denied",
            r"\b403 Forbidden\b",
            r"\bDLI\.0003\b",
            r"AccessDenied",
        ),
    ),
    (
        "dependency_missing",
        _rule(
            r"ClassNotFoundException",
            r"NoClassDefFoundError",
            r"ModuleNotFoundError",
            r"\bImportError\b",
        ),
    ),
    (
        "sql_error",
        _rule(
            r"AnalysisException",
            r"ParseException",
            r"Table or view not found",
            r"UNRESOLVED_COLUMN",
        ),
    ),
    (
        "timeout",
        _rule(
            r"TimeoutException",
            r"Futures timed out",
        ),
    ),
    (
        "killed",
        _rule(
            r"Session stopped by user",
            r"killed by (?:user|the user|DLI)",
            r"Application \S+ was killed by user",
        ),
    ),
    (
        "app_error",
        _rule(
            r"Traceback \(most recent call last\)",
            r"Exception in thread \"main\"",
            r"Job aborted due to stage failure",
            r"spark-submit exited with code",
            r"User class threw exception",
        ),
    ),
)

#: JVM launch flags that name an error without reporting one (-XX:OnOutOfMemoryError='kill %p')
_LAUNCH_FLAG = re.compile(r"-XX:\+?On\w*Error(?:=\S*)?")


def classify(records: Sequence[str]) -> str:
    """The reason a job with these last log records died (``unknown`` if none is said)."""
    text = "\n".join(records)
    if len(text) > MAX_TEXT:
        text = text[-MAX_TEXT:]
    text = _LAUNCH_FLAG.sub(" ", text)
    for reason, pattern in RULES:
        if pattern.search(text):
            return reason
    return "unknown"


#: what a row's log holds before anything was logged: its section headers alone
_HEADERS = frozenset({"stdout:", "stderr:", "yarn diagnostics:"})
_ANY = msgspec.json.Decoder()
#: records read of one log at most (DLI sends the last 10)
MAX_RECORDS = 100

LogSource = Literal["list", "none"]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a job died: its ``reason``, the log records it was read from (unredacted: the
    output layer redacts and bounds them), and where they came from (``none``: no record said
    anything)."""

    reason: str
    records: tuple[str, ...]
    source: LogSource


def read_log(raw: bytes) -> tuple[str, ...]:
    """A row's undecoded ``log`` as its records (see :func:`log_records`)."""
    try:
        return log_records(_ANY.decode(raw))
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ()


def log_records(value: object) -> tuple[str, ...]:
    """A row's ``log`` as its records: a list of strings, else none (a log can never fail a
    poll); the last :data:`MAX_RECORDS` at most."""
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        return ()
    return tuple(value[-MAX_RECORDS:])


class RawLog:
    """A dead row's ``log`` as it came: decoded only when an event needs it (most dead rows
    are history a listing meets again). Equal to another with the same records."""

    __slots__ = ("_raw", "_records")

    def __init__(self, raw: bytes = b"", records: tuple[str, ...] | None = None) -> None:
        self._raw = raw
        self._records = records

    @classmethod
    def of(cls, value: object) -> RawLog:
        """The log of a row already decoded (the tolerant parser's)."""
        return cls(records=log_records(value))

    def records(self) -> tuple[str, ...]:
        if self._records is None:
            self._records = read_log(self._raw)
        return self._records

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawLog) and self.records() == other.records()

    __hash__ = None  # type: ignore[assignment]  # compared by content, never hashed

    def __repr__(self) -> str:
        return f"RawLog({self.records()!r})"


def explain(log: RawLog | None) -> Failure:
    """Why the job whose row carried this ``log`` died."""
    records = log.records() if log is not None else ()
    said = any(r.strip().lower() not in _HEADERS for r in records if r.strip())
    return Failure(classify(records), records, "list" if said else "none")
