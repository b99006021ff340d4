"""``dli-monitor check``: signed requests per queue, one verdict line per queue saying what the
API was seen to do on its open points (``total``, order, filters, spelling), and one line for
what it answers about a job that does not exist."""

from __future__ import annotations

import sys
import time
import uuid

import aiohttp

from monitor import __version__
from monitor.app.config import ConfigError, Settings
from monitor.app.daemon import build_signer
from monitor.app.targets import expand
from monitor.core.behaviour import BehaviourBook
from monitor.dli.client import DLIClient, RetryBudget, RetryPolicy
from monitor.dli.credentials import CredentialError
from monitor.dli.errors import APIError, DLIError, RequestTimeout, TransportError, is_gone
from monitor.dli.transport import AiohttpTransport
from monitor.poll.strategy import WATERMARK_MARGIN_MS, FullStrategy, IncrementalStrategy

__all__ = ["check", "hint"]


def hint(exc: DLIError) -> str:  # noqa: C901, PLR0911 (one return per known cause, a table)
    """The usual cause of an error, in a few words."""
    if isinstance(exc, APIError):
        text = f"{exc.code} {exc.message}".lower()
        if exc.status == 401 and ("expire" in text or "date" in text or "time" in text):
            return "the request's date was rejected: check this machine's clock (NTP)"
        if exc.status == 401 or "auth" in text or "signature" in text or "aksk" in text:
            return "check DLI_MONITOR_AK / DLI_MONITOR_SK (or the token) and DLI_MONITOR_AUTH"
        if exc.status == 403:
            return "the credentials lack permission on this queue (IAM policy dli:jobs:list…)"
        if exc.status == 404 or "project" in text:
            return "check DLI_MONITOR_PROJECT_ID and DLI_MONITOR_REGION / DLI_MONITOR_ENDPOINT"
        if exc.code == "DLI.0002" or "queue" in text:
            return "check the queue name in DLI_MONITOR_QUEUES"
        if exc.status == 429:
            return "throttled: lower DLI_MONITOR_MAX_RPS"
        return "see the API's error code in the DLI error code reference"
    if isinstance(exc, CredentialError):
        if exc.setting == "DLI_MONITOR_USE_METADATA":
            return (
                "temporary keys come from the metadata service of a Huawei Cloud ECS/CCE node "
                "with an agency; elsewhere set DLI_MONITOR_AK / DLI_MONITOR_SK"
            )
        return f"no credentials could be read: check {exc.setting}"
    if isinstance(exc, RequestTimeout):
        return (
            "a timeout, not a refusal: no answer within DLI_MONITOR_REQUEST_TIMEOUT (a slow or "
            "filtered network, proxy or endpoint)"
        )
    if isinstance(exc, TransportError):
        return "endpoint unreachable: check DLI_MONITOR_REGION / DLI_MONITOR_ENDPOINT, the network"
    return "the answer was not a DLI list page: is the endpoint a DLI API?"


async def check(settings: Settings) -> int:
    """Print ``<queue>: ok (N jobs)`` or ``<queue>: FAILED …`` per queue of every target
    (``<project>/<queue>`` with several); 0 only if all are ok."""
    if settings.project_id is None and not settings.targets:
        raise ConfigError("invalid configuration: DLI_MONITOR_PROJECT_ID: required")
    targets = expand(settings)
    failures = queues = 0
    for target in targets:
        prefix = f"{target.project_id}/" if len(targets) > 1 else ""
        failures += await _check_target(target, prefix)
        queues += len(target.queues) or 1
    if failures:
        print(f"{failures} of {queues} failed", file=sys.stderr)
    return 1 if failures else 0


async def _check_target(settings: Settings, prefix: str) -> int:
    """One target's lines; the number of its queues that failed."""
    assert settings.project_id is not None
    failures = 0
    async with aiohttp.ClientSession(
        headers={"User-Agent": f"dli-monitor/{__version__}"}
    ) as session:
        transport = AiohttpTransport(
            session,
            settings.base_url,
            signer=build_signer(settings, session),
            timeout=settings.request_timeout,
        )
        client = DLIClient(
            transport, settings.project_id, retry=RetryPolicy(attempts=2, max_retry_after=5)
        )
        book = BehaviourBook()
        for queue in settings.queues or (None,):
            name = prefix + (queue or "(all queues)")
            # Retries are not reported by check: its verdict line says how the request ended.
            source = client.for_poll(RetryBudget(2))
            try:
                full = await FullStrategy(probe=queue is not None).gather(
                    source, queue, page_size=settings.page_size, behaviour=book.current, sizes={}
                )
                learned = book.learn(full.facts)
                if queue is not None:
                    # Jobs of the last hour with start and order: shows whether both hold.
                    since = int(time.time() * 1000) - 3_600_000 + WATERMARK_MARGIN_MS
                    recent = await IncrementalStrategy(since).gather(
                        source, queue, page_size=settings.page_size, behaviour=learned, sizes={}
                    )
                    learned = book.learn(recent.facts)
            except DLIError as exc:
                failures += 1
                print(f"{name}: FAILED {exc} — {hint(exc)}", flush=True)
                continue
            jobs = full.listing.listed
            verdict = (
                f"ok ({jobs} jobs listed)" if jobs else "ok, but 0 jobs: is the queue name right?"
            )
            print(f"{name}: {verdict}; {learned.describe()}", flush=True)
        if failures < (len(settings.queues) or 1):
            print(f"{prefix}deleted jobs: {await _deleted_answer(client)}", flush=True)
    return failures


async def _deleted_answer(client: DLIClient) -> str:
    """What the API answers for a job id that cannot exist, and what the daemon makes of it."""
    try:
        await client.for_poll(RetryBudget(1)).get_job(str(uuid.uuid4()))
    except DLIError as exc:
        if is_gone(exc):
            return f"answered {exc}: reported as job.vanished"
        return (
            f"answered {exc}: not the documented DLI.0002, so an active job that leaves the "
            "listing is never reported vanished; it is forgotten (job.forgotten) after an hour"
        )
    return "a made-up job id was answered as a job: vanished jobs cannot be confirmed"
