"""No secret in anything a failing daemon prints, whatever the path through the code."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import anyio

from monitor.simulator import Simulator, World, running_simulator
from tests.harness import STILL

SK = "sk-S3CRET-do-not-print"
TOKEN = "token-S3CRET-do-not-print"


async def test_no_secret_in_any_output_of_a_failing_run(tmp_path: Path) -> None:
    """Run the real daemon with keys the API rejects and a broken state directory; capture
    everything it prints; no secret may appear, whatever the path through the code."""
    world = World("credproj", ("etl",), seed=1, now_ms=int(time.time() * 1000), lifecycle=STILL)
    sim = Simulator(world, credentials=("AK", "the-right-secret"))
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    async with running_simulator(sim) as url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DLI_MONITOR_")},
            "DLI_MONITOR_PROJECT_ID": "credproj",
            "DLI_MONITOR_ENDPOINT": url,
            "DLI_MONITOR_QUEUES": "etl",
            "DLI_MONITOR_AK": "AK",
            "DLI_MONITOR_SK": SK,
            "DLI_MONITOR_SECURITY_TOKEN": TOKEN,
            "DLI_MONITOR_POLL_INTERVAL": "0.2",
            "DLI_MONITOR_LISTEN": "127.0.0.1:0",
            "DLI_MONITOR_LOG_FORMAT": "json",
            "DLI_MONITOR_STATE_FILE": str(blocker / "state.json"),
        }
        result = b""
        async with await anyio.open_process([sys.executable, "-m", "monitor", "run"], env=env) as p:
            await anyio.sleep(2)
            p.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                await p.wait()
            assert p.stdout is not None and p.stderr is not None
            result = await _drain(p.stdout) + await _drain(p.stderr)
        check = await anyio.run_process(
            [sys.executable, "-m", "monitor", "check"], env=env, check=False
        )
    text = result.decode() + (check.stdout + check.stderr).decode()
    assert "401" in text and "state.save_failed" in text, text[-2000:]
    for secret in (SK, TOKEN):
        assert secret not in text


async def _drain(stream: anyio.abc.ByteReceiveStream) -> bytes:
    data = b""
    try:
        async for chunk in stream:
            data += chunk
    except anyio.ClosedResourceError:
        pass
    return data
