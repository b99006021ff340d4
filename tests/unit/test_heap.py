"""Trimming the heap after a large poll: supported where glibc is, harmless elsewhere."""

from __future__ import annotations

import platform

from monitor.app import heap


def test_a_trim_is_asked_of_glibc_and_changes_nothing_that_is_still_held() -> None:
    held = [bytes(1000) for _ in range(1000)]
    trimmed = heap.trim()
    assert trimmed is (platform.libc_ver()[0] == "glibc")
    assert all(len(b) == 1000 for b in held)
