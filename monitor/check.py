"""``dli-monitor check``: one signed list request per queue, one verdict line per queue."""

from __future__ import annotations

import sys

import aiohttp

from monitor import __version__
from monitor.config import ConfigError, Settings
from monitor.daemon import build_signer
from monitor.dli.client import DLIClient, RetryBudget, RetryPolicy
from monitor.dli.errors import APIError, DLIError, RequestTimeout, TransportError

__all__ = ["check", "hint"]


def hint(exc: DLIError) -> str:
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
    if isinstance(exc, TransportError | RequestTimeout):
        return "endpoint unreachable: check DLI_MONITOR_REGION / DLI_MONITOR_ENDPOINT, the network"
    return "the answer was not a DLI list page: is the endpoint a DLI API?"


async def check(settings: Settings) -> int:
    """Print ``<queue>: ok (N jobs)`` or ``<queue>: FAILED …`` per queue; 0 only if all are ok."""
    if settings.project_id is None:
        raise ConfigError("invalid configuration: DLI_MONITOR_PROJECT_ID: required")
    failures = 0
    async with aiohttp.ClientSession(
        headers={"User-Agent": f"dli-monitor/{__version__}"}
    ) as session:
        client = DLIClient(
            session,
            settings.base_url,
            settings.project_id,
            signer=build_signer(settings, session),
            timeout=settings.request_timeout,
            retry=RetryPolicy(attempts=2, max_retry_after=5),
        )
        for queue in settings.queues or (None,):
            name = queue or "(all queues)"
            try:
                page, _ = await client.list_page(
                    offset=0, size=1, queue=queue, budget=RetryBudget(1)
                )
            except DLIError as exc:
                failures += 1
                print(f"{name}: FAILED {exc} — {hint(exc)}", flush=True)
            else:
                print(f"{name}: ok ({page.total} jobs listed)", flush=True)
    if failures:
        print(f"{failures} of {len(settings.queues) or 1} failed", file=sys.stderr)
    return 1 if failures else 0
