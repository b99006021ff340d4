"""Credential sources, token auth, clock skew, and that no secret ever reaches the output."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import anyio
import pytest
from aiohttp import web

from monitor.app.config import Settings
from monitor.app.daemon import Daemon
from monitor.dli.auth import OutgoingRequest, TokenAuth
from monitor.dli.credentials import CredentialError, MetadataKeys, SecretsDirKeys, TokenFile
from monitor.output.events import configure_logging
from monitor.simulator import Simulator, World, running_simulator
from tests.harness import STILL, running
from tests.truth import parse_events

SK = "sk-S3CRET-do-not-print"
TOKEN = "token-S3CRET-do-not-print"


async def test_secrets_dir_keys_are_reread_when_the_files_change(tmp_path: Path) -> None:
    source = SecretsDirKeys(tmp_path)
    with pytest.raises(CredentialError):
        await source.keys()
    (tmp_path / "dli_monitor_ak").write_text("AK1\n")
    (tmp_path / "dli_monitor_sk").write_text("SK1\n")
    first = await source.keys()
    assert (first.ak, first.sk.get_secret_value(), first.security_token) == ("AK1", "SK1", None)
    # Kubernetes rotates a Secret by writing new files and swapping a symlink: new inodes.
    new = tmp_path / "new_sk"
    new.write_text("SK2")
    new.replace(tmp_path / "dli_monitor_sk")
    assert (await source.keys()).sk.get_secret_value() == "SK2"
    assert "SK2" not in repr(source)


async def test_token_file_is_reread_and_sent_as_x_auth_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("tok-1")
    auth = TokenAuth(TokenFile(path), project_id="p1")
    request = OutgoingRequest("GET", "h", "/v2.0/p1/batches")
    assert (await auth.headers(request))["X-Auth-Token"] == "tok-1"
    new = tmp_path / "t2"
    new.write_text("tok-2")
    new.replace(path)
    headers = await auth.headers(request)
    assert headers["X-Auth-Token"] == "tok-2" and headers["X-Project-Id"] == "p1"
    assert "Authorization" not in headers and "tok-2" not in repr(auth)


@asynccontextmanager
async def metadata_service(expires_in: float) -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback stand-in for http://169.254.169.254 with session tokens."""
    calls: list[str] = []

    async def token(request: web.Request) -> web.Response:
        calls.append("token")
        return web.Response(text="session-token")

    async def key(request: web.Request) -> web.Response:
        if request.headers.get("X-Metadata-Token") != "session-token":
            return web.Response(status=401)
        calls.append("key")
        expires = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() + expires_in))
        n = calls.count("key")
        return web.json_response(
            {
                "credential": {
                    "access": f"TMPAK{n}",
                    "secret": f"tmp-sk-{n}",
                    "securitytoken": f"tok-{n}",
                    "expires_at": expires,
                }
            }
        )

    app = web.Application()
    app.router.add_put("/meta-data/latest/api/token", token)
    app.router.add_get("/openstack/latest/securitykey", key)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", calls
    finally:
        await runner.cleanup()


async def test_metadata_keys_are_cached_then_refreshed_before_expiry() -> None:
    async with metadata_service(expires_in=3600) as (url, calls), aiohttp.ClientSession() as s:
        source = MetadataKeys(s, url, refresh_before=600)
        keys = await source.keys()
        assert keys.ak == "TMPAK1" and keys.security_token is not None
        assert (await source.keys()).ak == "TMPAK1"
        assert calls == ["token", "key"], "cached while far from expiry"
    async with metadata_service(expires_in=300) as (url, calls), aiohttp.ClientSession() as s:
        source = MetadataKeys(s, url, refresh_before=600)
        assert (await source.keys()).ak == "TMPAK1"
        assert (await source.keys()).ak == "TMPAK2", "refreshed: expiry is within the margin"


async def test_metadata_keys_sign_requests_the_simulator_accepts() -> None:
    configure_logging("json", io.StringIO())
    world = World("credproj", ("etl",), seed=1, now_ms=int(time.time() * 1000), lifecycle=STILL)
    sim = Simulator(world, credentials=("TMPAK1", "tmp-sk-1"))
    async with metadata_service(3600) as (meta, _), running_simulator(sim) as url:
        daemon = Daemon(
            Settings(
                project_id="credproj",
                endpoint=url,
                queues=("etl",),
                auth="aksk",
                use_metadata=True,
                metadata_url=meta,
                listen="127.0.0.1:0",
                poll_interval=0.2,
            )
        )
        async with running(daemon):
            # running() returned: every queue was polled with the temporary keys, and the
            # signing simulator accepted them.
            assert daemon.ready() == (True, "ok")
            up = {"project_id": "credproj", "region": "", "queue": "etl"}
            assert daemon.metrics.registry.get_sample_value("dli_monitor_up", up) == 1
            assert sim.requests > 0


async def test_clock_skew_is_measured_and_reported_once() -> None:
    out = io.StringIO()
    configure_logging("json", out)
    world = World("credproj", ("etl",), seed=1, now_ms=int(time.time() * 1000), lifecycle=STILL)
    # The API's clock is an hour ahead of ours: every signature looks an hour old to it.
    sim = Simulator(world, credentials=("AK", SK), clock=lambda: time.time() + 3600)
    async with running_simulator(sim) as url:
        daemon = Daemon(
            Settings(
                project_id="credproj",
                endpoint=url,
                queues=("etl",),
                ak="AK",
                sk=SK,
                listen="127.0.0.1:0",
                poll_interval=0.2,
            )
        )
        async with running(daemon, ready=False):
            with anyio.fail_after(10):  # three failed polls, 0.2 s apart: the skew said once
                while out.getvalue().count('"event":"poll.failed"') < 3:
                    await anyio.sleep(0.02)
    events = parse_events(out.getvalue())
    skew = [e for e in events if e["event"] == "auth.clock_skew"]
    assert len(skew) == 1 and -3700 < skew[0]["skew_seconds"] < -3500
    failed = [e for e in events if e["event"] == "poll.failed"]
    assert failed and "clock is -3600 s off" in failed[0]["error"].replace("-3599", "-3600")
    assert failed[0]["error_code"] == "APIGW.0301"
