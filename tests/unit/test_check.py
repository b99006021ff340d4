"""`check`'s verdicts name the real cause: credentials that cannot be read, a slow endpoint."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from monitor.app.check import check
from monitor.app.config import Settings


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


async def verdict(capsys: pytest.CaptureFixture[str], **values: object) -> str:
    settings = Settings(project_id="p1", queues=("etl",), **values)  # type: ignore[arg-type]
    assert await check(settings) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


async def test_a_missing_token_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with silent_endpoint() as url:
        line = await verdict(
            capsys, endpoint=url, auth="token", token_file=tmp_path / "absent", request_timeout=1
        )
    assert line.startswith("etl: FAILED the token file")
    assert line.endswith("no credentials could be read: check DLI_MONITOR_TOKEN_FILE")


async def test_an_unreachable_metadata_service_says_where_temporary_keys_come_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with silent_endpoint() as url:
        line = await verdict(
            capsys,
            endpoint=url,
            use_metadata=True,
            metadata_url="http://127.0.0.1:9",  # nothing listens: refused
        )
    assert "metadata service unreachable" in line
    assert "ECS/CCE node" in line and "DLI_MONITOR_AK" in line
    assert "DLI list page" not in line


async def test_a_slow_endpoint_is_a_timeout_not_unreachable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with silent_endpoint() as url:
        line = await verdict(capsys, endpoint=url, auth="none", request_timeout=0.3)
    assert "timeout" in line and "DLI_MONITOR_REQUEST_TIMEOUT" in line
    assert "unreachable" not in line
