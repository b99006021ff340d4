"""What the DLI API has been seen to do on the points its documentation leaves open.

Pure: facts in, a new :class:`ApiBehaviour` out. Nothing here is assumed: every verdict starts
``unknown`` and changes only on evidence from the rows and totals the API answered, so the daemon
is correct on whichever variant real DLI (or a private deployment, or a future version) turns
out to be. The strategies read the value to decide what they may rely on:

* ``total`` — paging may use ``total`` (fetch pages concurrently) only once it has matched the
  rows of a pass; the terminal-state counts of incremental polls may come from ``total`` only
  once it is ``filtered``: it has matched the rows and differed between ``state`` filters.
* ``order`` — the recent-jobs listing sends ``order=CREATE_TIME_DESC`` and checks the rows'
  ``create_time``; it relies on the order only to stop paging early when ``start`` is ignored.
* ``state_filter`` / ``time_filter`` / ``queue_filter`` — rows outside a filter are dropped
  before anything is applied, and the verdict decides whether incremental polls are possible.
* ``spelling`` — states are read case-insensitively everywhere; this records how they came.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from monitor.core.jobs import JobState

__all__ = [
    "ApiBehaviour",
    "BehaviourBook",
    "PassFacts",
    "Seen",
    "TotalMeaning",
]


class Seen(enum.StrEnum):
    """Whether the API was seen honouring something."""

    UNKNOWN = "unknown"
    HONOURED = "honoured"
    IGNORED = "ignored"


class TotalMeaning(enum.StrEnum):
    """What ``total`` counts."""

    UNKNOWN = "unknown"
    #: equal to the rows of every complete pass seen (filters not yet shown to change it)
    MATCHES_ROWS = "matches_rows"
    #: the rows matching the request's filters: equal to the rows, and different per filter
    FILTERED = "filtered"
    #: more (or less) than the rows matching the filters: e.g. every job of the project (Livy)
    UNFILTERED = "unfiltered"
    #: not in the answer
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class PassFacts:
    """What one listing pass showed about the API, read from its rows.

    ``totals``: the distinct ``total`` values of its pages (``None`` for a page without one);
    ``rows``: rows the server sent, all pages together; ``settled``: the pass ended on evidence
    from the rows (an empty or short page) and read no job twice, so ``rows`` is the size of
    the listing; ``foreign_*``: rows outside the queue, state or ``start`` filter that was sent;
    ``order_checked``/``order_broken``: a requested order was checked on rows with distinct
    create times, and did or did not hold.
    """

    filtered_state: JobState | None = None
    filtered_queue: bool = False
    filtered_start: bool = False
    totals: frozenset[int | None] = frozenset()
    rows: int = 0
    settled: bool = False
    foreign_queue: bool = False
    foreign_state: bool = False
    foreign_start: bool = False
    order_checked: bool = False
    order_broken: bool = False
    spelling: str | None = None
    #: the ``size`` asked for, if a page came back with that many rows (0 if none did)
    full_page_size: int = 0


@dataclass(frozen=True, slots=True)
class ApiBehaviour:
    """The API's behaviour as observed so far; each field is a verdict, ``unknown`` at first."""

    total: TotalMeaning = TotalMeaning.UNKNOWN
    order: Seen = Seen.UNKNOWN
    state_filter: Seen = Seen.UNKNOWN
    time_filter: Seen = Seen.UNKNOWN
    queue_filter: Seen = Seen.UNKNOWN
    #: a state as the API spelt it when not in the documented lower case ("" if it was)
    spelling: str = ""
    #: the largest ``size`` the API was seen to answer in full: no server-side cap below it, so
    #: a shorter page at that size or less is the end of the rows
    full_page_size: int = 0

    # -- what the strategies may rely on -------------------------------------------------------

    @property
    def pages_by_total(self) -> bool:
        """``total`` may bound paging (pages fetched concurrently up to it)."""
        return self.total in (TotalMeaning.MATCHES_ROWS, TotalMeaning.FILTERED)

    def honours_size(self, size: int) -> bool:
        """A page of ``size`` rows is answered in full (a short one is the end of the rows)."""
        return self.full_page_size >= size

    @property
    def counts_by_total(self) -> bool:
        """``total`` of a ``state``-filtered request counts that state's jobs exactly."""
        return self.total is TotalMeaning.FILTERED and self.state_filter is not Seen.IGNORED

    def incremental_blocker(self) -> str | None:
        """Why incremental polls cannot be exact on this API, or ``None`` if nothing seen so far
        rules them out. (An ignored queue filter does not: rows of other queues are dropped
        from every listing, and the counts come from listings then, never from ``total``.)"""
        if self.state_filter is Seen.IGNORED:
            return "the API ignores the state filter"
        if self.time_filter is Seen.IGNORED and self.order is Seen.IGNORED:
            return "the API ignores both start and order: new jobs cannot be listed alone"
        return None

    # -- learning ---------------------------------------------------------------------------

    def learn(self, facts: Iterable[PassFacts]) -> ApiBehaviour:
        """This behaviour updated with one poll's passes (the passes of one poll are taken
        together: ``total`` is ``filtered`` once totals differ between state filters)."""
        passes = list(facts)
        new = self
        for f in passes:
            new = new._learn_one(f)
        # total depends on the state filter (so it counts filtered rows) if two state filters
        # gave different totals that each matched their rows, or one matched fewer rows than an
        # unfiltered pass of the same poll listed.
        by_state = {
            total
            for f in passes
            if f.filtered_state is not None and f.settled and len(f.totals) == 1
            for total in f.totals
            if total == f.rows
        }
        unfiltered_rows = max(
            (
                f.rows
                for f in passes
                if f.settled and f.filtered_state is None and not f.filtered_start
            ),
            default=None,
        )
        below = unfiltered_rows is not None and any(
            t is not None and t < unfiltered_rows for t in by_state
        )
        if new.total in (TotalMeaning.MATCHES_ROWS, TotalMeaning.UNFILTERED) and (
            len(by_state) >= 2 or below
        ):
            new = replace(new, total=TotalMeaning.FILTERED)
        return new

    def _learn_one(self, f: PassFacts) -> ApiBehaviour:
        changes: dict[str, object] = {}
        if f.spelling and not self.spelling:
            changes["spelling"] = f.spelling
        if f.filtered_queue:
            changes["queue_filter"] = _seen(
                self.queue_filter, violated=f.foreign_queue, rows=f.rows
            )
        if f.filtered_state is not None:
            changes["state_filter"] = _seen(
                self.state_filter, violated=f.foreign_state, rows=f.rows
            )
        if f.filtered_start:
            changes["time_filter"] = _seen(self.time_filter, violated=f.foreign_start, rows=f.rows)
        if f.order_checked:
            changes["order"] = Seen.IGNORED if f.order_broken else Seen.HONOURED
        if f.full_page_size > self.full_page_size:
            changes["full_page_size"] = f.full_page_size
        total = self._learn_total(f)
        if total is not self.total:
            changes["total"] = total
        return replace(self, **changes) if changes else self  # type: ignore[arg-type]

    def _learn_total(self, f: PassFacts) -> TotalMeaning:
        if f.totals == frozenset({None}):
            return TotalMeaning.MISSING
        if not f.settled or len(f.totals) != 1 or None in f.totals:
            return self.total  # rows moved while paging: no evidence either way
        (total,) = f.totals
        if total != f.rows:
            return TotalMeaning.UNFILTERED
        if self.total in (TotalMeaning.UNKNOWN, TotalMeaning.MISSING):
            return TotalMeaning.MATCHES_ROWS
        # Unfiltered stays so on a total that matches the rows: a listing whose filter selects
        # everything (one queue that holds the whole project) cannot tell the two apart. Only
        # state filters that each match their rows with different totals move it (``learn``).
        return self.total

    # -- reporting --------------------------------------------------------------------------

    def describe(self) -> str:
        """One line for ``check`` and the README: what was found, in plain words."""
        total = {
            TotalMeaning.UNKNOWN: "total: not yet seen",
            TotalMeaning.MATCHES_ROWS: "total matches the rows listed",
            TotalMeaning.FILTERED: "total counts filtered rows",
            TotalMeaning.UNFILTERED: "total does not count filtered rows (paging by rows)",
            TotalMeaning.MISSING: "no total (paging by rows)",
        }[self.total]
        parts = [
            total,
            f"order {self.order.value}",
            f"state filter {self.state_filter.value}",
            f"start filter {self.time_filter.value}",
            f"queue filter {self.queue_filter.value}",
            f"states spelt like {self.spelling!r}" if self.spelling else "states in lower case",
        ]
        return "; ".join(parts)

    def labels(self) -> dict[str, str]:
        """The verdicts as metric labels / event fields."""
        return {
            "total": self.total.value,
            "order": self.order.value,
            "state_filter": self.state_filter.value,
            "time_filter": self.time_filter.value,
            "queue_filter": self.queue_filter.value,
            "spelling": self.spelling or "lower",
        }


def _seen(before: Seen, *, violated: bool, rows: int) -> Seen:
    """A filter is ignored once a row outside it came back; honoured once rows came and all
    were inside it (no rows: no evidence). Ignored is sticky: an API that ignored a filter once
    may do so again."""
    if violated:
        return Seen.IGNORED
    if before is Seen.IGNORED or rows == 0:
        return before
    return Seen.HONOURED


class BehaviourBook:
    """The current :class:`ApiBehaviour` of one API, shared by its pollers; ``on_change`` is
    told each time a poll's facts change the view (first learnt, or later seen differently).
    ``known``: what a previous run learnt (from the state file), so nothing is relearnt."""

    __slots__ = ("_on_change", "current")

    def __init__(
        self,
        on_change: Callable[[ApiBehaviour], None] | None = None,
        *,
        known: ApiBehaviour | None = None,
    ) -> None:
        self.current = known or ApiBehaviour()
        self._on_change = on_change or (lambda behaviour: None)

    def learn(self, facts: Iterable[PassFacts]) -> ApiBehaviour:
        new = self.current.learn(facts)
        if new != self.current:
            self.current = new
            self._on_change(new)
        return new
