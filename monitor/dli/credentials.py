"""Where signing keys and tokens come from, and how they are kept fresh.

* :class:`StaticKeys`: AK/SK (and security token) fixed at start-up, from the environment.
* :class:`SecretsDirKeys`: files in a directory such as a mounted Kubernetes Secret, re-read when
  they change (Kubernetes swaps a symlink, so the inode or mtime moves).
* :class:`MetadataKeys`: temporary AK/SK/security token from the ECS/CCE metadata service, as
  ``huaweicloudsdkcore``'s ``MetadataAccessor`` gets them, refreshed well before they expire.
* :class:`TokenFile`: an IAM token (``X-Auth-Token``) from a file, re-read when it changes.

Secret values are held as ``SecretStr``; no ``repr`` here shows one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import aiohttp
import anyio
import orjson
from pydantic import SecretStr

from monitor.dli.errors import DLIError

__all__ = [
    "CredentialError",
    "CredentialSource",
    "Keys",
    "MetadataKeys",
    "SecretsDirKeys",
    "StaticKeys",
    "TokenFile",
    "TokenSource",
]


_METADATA = "DLI_MONITOR_USE_METADATA"


class CredentialError(DLIError):
    """Credentials could not be obtained (file missing, metadata service unreachable);
    ``setting`` is the one to look at."""

    retryable = True

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True, slots=True)
class Keys:
    """An access key, its secret, and the security token that temporary keys carry."""

    ak: str
    sk: SecretStr
    security_token: SecretStr | None = None
    #: Unix time at which temporary keys expire
    expires_at: float | None = None


class CredentialSource(Protocol):
    """Where AK/SK come from; asked before every signature, so rotation takes effect at once."""

    async def keys(self) -> Keys: ...


class TokenSource(Protocol):
    """Where an IAM token comes from; asked before every request."""

    async def token(self) -> SecretStr: ...


class StaticKeys:
    """Keys fixed for the life of the process."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys

    def __repr__(self) -> str:
        return f"StaticKeys(ak={self._keys.ak!r})"

    async def keys(self) -> Keys:
        return self._keys


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


class _WatchedFiles:
    """Re-reads a few files when any of them changes; cheap enough to check per request."""

    def __init__(self, *paths: Path, setting: str) -> None:
        self._paths = paths
        self._setting = setting
        self._stamps: tuple[tuple[int, int] | None, ...] | None = None
        self._values: tuple[str | None, ...] = ()

    def read(self) -> tuple[str | None, ...]:
        stamps = tuple(_stamp(p) for p in self._paths)
        if stamps != self._stamps:
            values = []
            for path in self._paths:
                try:
                    values.append(path.read_text().strip() or None)
                except FileNotFoundError:
                    values.append(None)
                except OSError as exc:
                    message = f"cannot read {path}: {exc.strerror}"
                    raise CredentialError(message, self._setting) from None
            self._values, self._stamps = tuple(values), stamps
        return self._values


class SecretsDirKeys:
    """``dli_monitor_ak``, ``dli_monitor_sk`` and ``dli_monitor_security_token`` in a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        names = ("dli_monitor_ak", "dli_monitor_sk", "dli_monitor_security_token")
        self._files = _WatchedFiles(
            *(directory / n for n in names), setting="DLI_MONITOR_SECRETS_DIR"
        )

    def __repr__(self) -> str:
        return f"SecretsDirKeys({str(self.directory)!r})"

    async def keys(self) -> Keys:
        ak, sk, token = self._files.read()
        if not ak or not sk:
            raise CredentialError(
                f"{self.directory} has no dli_monitor_ak / dli_monitor_sk",
                "DLI_MONITOR_SECRETS_DIR",
            )
        return Keys(ak, SecretStr(sk), SecretStr(token) if token else None)


class TokenFile:
    """An IAM token in a file (e.g. written by a token-refreshing sidecar)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._files = _WatchedFiles(path, setting="DLI_MONITOR_TOKEN_FILE")

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"

    async def token(self) -> SecretStr:
        (value,) = self._files.read()
        if not value:
            raise CredentialError(
                f"the token file {self.path} is missing or empty", "DLI_MONITOR_TOKEN_FILE"
            )
        return SecretStr(value)


class StaticToken:
    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticToken(**********)"

    async def token(self) -> SecretStr:
        return self._token


def _expiry(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


class MetadataKeys:
    """Temporary keys of the instance's agency, from the metadata service.

    The session token (``PUT /meta-data/latest/api/token``) is asked for first, as the SDK does;
    services without it (404/405) are read without one. Keys are reused until ``refresh_before``
    seconds before they expire; one request at a time, whatever the number of pollers.
    """

    TOKEN_PATH = "/meta-data/latest/api/token"  # noqa: S105 (a URL path, not a secret)
    KEY_PATH = "/openstack/latest/securitykey"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str = "http://169.254.169.254",
        *,
        refresh_before: float = 600.0,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._refresh_before = refresh_before
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._keys: Keys | None = None
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"MetadataKeys({self._base!r})"

    def _fresh(self) -> bool:
        keys = self._keys
        if keys is None:
            return False
        return keys.expires_at is None or keys.expires_at - self._clock() > self._refresh_before

    async def keys(self) -> Keys:
        if self._fresh():
            assert self._keys is not None
            return self._keys
        async with self._lock:
            if not self._fresh():
                self._keys = await self._fetch()
            assert self._keys is not None
            return self._keys

    async def _fetch(self) -> Keys:
        try:
            headers: dict[str, str] = {}
            async with self._session.put(
                self._base + self.TOKEN_PATH,
                headers={"X-Metadata-Token-Ttl-Seconds": "21600"},
                timeout=self._timeout,
            ) as resp:
                if resp.status == 200:
                    headers["X-Metadata-Token"] = (await resp.text()).strip()
            async with self._session.get(
                self._base + self.KEY_PATH, headers=headers, timeout=self._timeout
            ) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            message = f"metadata service unreachable: {type(exc).__name__}"
            raise CredentialError(message, _METADATA) from None
        if status != 200:
            message = f"metadata service answered HTTP {status} for temporary keys"
            raise CredentialError(message, _METADATA)
        try:
            doc = orjson.loads(body)
            cred = doc.get("credential") or doc.get("credentials") or doc
            ak, sk = cred.get("access"), cred.get("secret")
            token = cred.get("securitytoken") or cred.get("securityToken")
        except (orjson.JSONDecodeError, AttributeError):
            raise CredentialError(
                "metadata service sent no readable credential", _METADATA
            ) from None
        if not isinstance(ak, str) or not isinstance(sk, str) or not ak or not sk:
            raise CredentialError("metadata service sent no access/secret key", _METADATA)
        return Keys(
            ak,
            SecretStr(sk),
            SecretStr(token) if isinstance(token, str) and token else None,
            _expiry(cred.get("expires_at") or cred.get("expiration")),
        )
