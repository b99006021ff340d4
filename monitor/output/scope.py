"""The labels that keep one project's series apart from another's in one Prometheus: their names
and one project's values, side by side, so that the metric families and the level series read
both from here."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SCOPE_LABELS", "Scope"]

#: the labels every series carries, the names of :attr:`Scope.values`
SCOPE_LABELS = ("project_id", "region")


@dataclass(frozen=True, slots=True)
class Scope:
    """One project's scope labels."""

    project_id: str
    #: "" when not known (an endpoint outside the region table); PromQL reads it as absent
    region: str = ""

    @property
    def values(self) -> tuple[str, str]:
        """The label values, in :data:`SCOPE_LABELS` order."""
        return (self.project_id, self.region)
