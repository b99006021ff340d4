"""Configuration: environment variables ``DLI_MONITOR_*`` (contract), optionally a TOML file.

Precedence, highest first: environment, files in the secrets directory, the ``--config`` TOML
file, defaults. Every problem is reported as one line naming the variable
(:class:`ConfigError`), which the CLI prints before exiting with status 2.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from monitor.dli.regions import endpoint_for, region_of
from monitor.output.metrics import DEFAULT_DURATION_BUCKETS
from monitor.output.redact import redact_text, redact_url

__all__ = ["ConfigError", "Settings", "given_settings", "load_settings", "unknown_variables"]

PREFIX = "DLI_MONITOR_"
_PROJECT_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
# DLI queue names: letters, digits and underscores, at most 128 characters.
_QUEUE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z0-9]+)+$")


class ConfigError(Exception):
    """The configuration is invalid; ``str()`` is one line naming the setting."""


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return value
    raise ValueError("must be a comma-separated string or a list")


class Settings(BaseSettings):
    """dli-monitor's settings. Field ``x`` is read from ``DLI_MONITOR_X``."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="forbid", case_sensitive=False, frozen=True
    )
    #: False: only the values given to the constructor count (see :func:`given_settings`)
    _read_environment: ClassVar[bool] = True

    project_id: str | None = None
    region: str | None = None
    endpoint: str | None = None
    queues: Annotated[tuple[str, ...], NoDecode] = ()
    poll_interval: float = Field(30.0, gt=0, le=86400)
    page_size: int = Field(100, ge=1, le=1000)
    max_concurrency: int = Field(4, ge=1, le=256)
    max_rps: float = Field(10.0, gt=0, le=10000)
    max_rpm: int | None = Field(None, ge=1, le=1_000_000)
    recount_interval: float = Field(600.0, gt=0, le=7 * 86400)
    request_timeout: float = Field(10.0, gt=0, le=300)
    auth: Literal["aksk", "token", "none"] = "aksk"
    ak: SecretStr | None = Field(
        None, validation_alias=AliasChoices(f"{PREFIX}AK", "HUAWEICLOUD_SDK_AK", "ak")
    )
    sk: SecretStr | None = Field(
        None, validation_alias=AliasChoices(f"{PREFIX}SK", "HUAWEICLOUD_SDK_SK", "sk")
    )
    security_token: SecretStr | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    use_metadata: bool = False
    metadata_url: str = "http://169.254.169.254"
    listen: str = "0.0.0.0:10071"
    log_format: Literal["json", "console", "auto"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    poll_strategy: Literal["auto", "full", "incremental"] = "auto"
    state_file: Path | None = None
    duration_buckets: Annotated[tuple[float, ...], NoDecode] = DEFAULT_DURATION_BUCKETS
    secrets_dir: Path | None = None
    #: several projects, regions or accounts: tables of the settings above (TOML `[[targets]]`)
    targets: tuple[dict[str, Any], ...] = ()
    #: this replica's shard (a number from 0, or `auto`: a StatefulSet pod's ordinal)
    shard: str | None = None
    total_shards: int = Field(1, ge=1, le=10_000)

    @field_validator("ak", "sk", "security_token", "token")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is set but empty")
        return value

    @field_validator("project_id")
    @classmethod
    def _project_id(cls, value: str | None) -> str | None:
        if value is not None and not _PROJECT_ID.match(value):
            raise ValueError("must be 1 to 64 letters or digits")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.match(value):
            raise ValueError("must look like cn-north-4")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return value.rstrip("/")

    @field_validator("queues", mode="before")
    @classmethod
    def _queues(cls, value: Any) -> Any:
        names = _split(value)
        for name in names:
            if not isinstance(name, str):
                raise ValueError("queue names are strings")  # noqa: TRY004 (pydantic reports ValueError)
            if not _QUEUE.match(name):
                raise ValueError(f"{name!r} is not a queue name (letters, digits, _ and -)")
        if len(set(names)) != len(names):
            raise ValueError("lists a queue twice")
        return names

    @field_validator("duration_buckets", mode="before")
    @classmethod
    def _buckets(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("duration_buckets")
    @classmethod
    def _buckets_sorted(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(b <= 0 for b in value) or list(value) != sorted(set(value)):
            raise ValueError("must be positive numbers in increasing order")
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _auth(self) -> Settings:
        if self.targets:
            return self  # each target is checked whole when the targets are expanded
        if self.region is None and self.endpoint is None and self.project_id is not None:
            raise ValueError(f"{PREFIX}REGION or {PREFIX}ENDPOINT must be set")
        if self.endpoint is None and self.region is not None and not endpoint_for(self.region):
            raise ValueError(
                f"{PREFIX}REGION={self.region} is not a DLI region this version knows; set "
                f"{PREFIX}ENDPOINT to its endpoint (https://dli.<region>.<domain>)"
            )
        keyless = self.ak is None or self.sk is None
        if self.auth == "aksk" and keyless and not self.use_metadata and not self.secrets_dir:
            raise ValueError(
                f"{PREFIX}AUTH=aksk needs {PREFIX}AK and {PREFIX}SK (or HUAWEICLOUD_SDK_AK/SK, "
                f"files in {PREFIX}SECRETS_DIR, or {PREFIX}USE_METADATA=true for temporary keys)"
            )
        if self.poll_strategy == "incremental" and not self.queues:
            raise ValueError(
                f"{PREFIX}POLL_STRATEGY=incremental needs {PREFIX}QUEUES: terminal states are "
                "counted per queue"
            )
        if self.auth == "token" and self.token is None and self.token_file is None:
            raise ValueError(f"{PREFIX}AUTH=token needs {PREFIX}TOKEN or {PREFIX}TOKEN_FILE")
        return self

    @property
    def base_url(self) -> str:
        """The API's base URL: the endpoint if set, else the region's public endpoint."""
        if self.endpoint:
            return self.endpoint
        endpoint = endpoint_for(self.region or "")
        assert endpoint is not None  # validated above
        return endpoint

    @property
    def known_region(self) -> str:
        """The region, set or recognised from a public endpoint; "" when neither tells."""
        return self.region or region_of(self.base_url) or ""

    @property
    def credential_source(self) -> str:
        """Where keys or tokens come from: env, secrets_dir, metadata, token_file (or none)."""
        if self.auth == "none":
            return "none"
        if self.auth == "token":
            return "token_file" if self.token_file is not None else "env"
        if self.secrets_dir is not None and self.sk is None and not self.use_metadata:
            return "secrets_dir"  # a target naming only its directory: files may come later
        if (
            self.secrets_dir is not None
            and not ({"DLI_MONITOR_SK", "HUAWEICLOUD_SDK_SK"} & {k.upper() for k in os.environ})
            and (self.secrets_dir / "dli_monitor_sk").is_file()
        ):
            return "secrets_dir"
        if self.ak is not None and self.sk is not None:
            return "env"
        return "metadata"

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    def summary(self) -> dict[str, Any]:
        """The configuration without secrets, for the ``monitor.started`` event."""
        return {
            "endpoint": redact_url(self.base_url),
            "queues": list(self.queues),
            "poll_interval": self.poll_interval,
            "poll_strategy": self.poll_strategy,
            "page_size": self.page_size,
            "max_concurrency": self.max_concurrency,
            "max_rps": self.max_rps,
            "max_rpm": self.max_rpm,
            "recount_interval": self.recount_interval,
            "auth": self.auth,
            "credentials": self.credential_source,
            "listen": self.listen,
            "state_file": str(self.state_file) if self.state_file else None,
        }

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if not cls._read_environment:
            return (init_settings,)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        secrets_dir = settings_cls.model_config.get("secrets_dir")
        if secrets_dir:
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir))
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port with a port from 0 to 65535")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 (the documented default: a sidecar is scraped)
    return host, int(port)


def _field_env(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "configuration"
    name = str(loc[0]).upper()
    return name if name.startswith(PREFIX) else PREFIX + name


#: settings whose values are never shown, not even in an error about them
SECRET_FIELDS = frozenset({"ak", "sk", "security_token", "token"})


def _one_line(exc: ValidationError, names: Mapping[str, str] | None = None) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        msg = redact_text(err["msg"].removeprefix("Value error, "))
        where = _field_env(err["loc"])
        if names is not None and err["loc"]:
            where = names.get(str(err["loc"][0]), where)
        if err["type"] == "extra_forbidden":
            msg = "is not a known setting"
            bare = str(err["loc"][0]).upper().removeprefix(PREFIX).lower() if err["loc"] else ""
            if bare != str(err["loc"][0]).lower() and bare in Settings.model_fields:
                msg += f" (in a TOML file, write {bare} without the {PREFIX} prefix)"
        value = err.get("input")
        field = str(err["loc"][0]).lower() if err["loc"] else ""
        shown = ""
        # Only a known, non-secret setting's value is echoed: an unknown key may be a misnamed
        # secret (`secret_key = "…"`), and a URL may carry a password.
        if (
            isinstance(value, str | int | float)
            and field in Settings.model_fields
            and field not in SECRET_FIELDS
        ):
            shown = f" (got {redact_text(repr(value))})"
        problems.append(f"{where}: {msg}{shown}" if err["loc"] else msg)
    return "invalid configuration: " + "; ".join(problems)


class _GivenSettings(Settings):
    """Settings from the values given, and nothing else: no environment, no file."""

    _read_environment = False


def given_settings(names: Mapping[str, str], **values: Any) -> Settings:
    """:class:`Settings` of exactly ``values`` (the demo's flags), never read from the
    environment; a bad value is a :class:`ConfigError` naming it as ``names`` has it (a flag)."""
    try:
        return _GivenSettings(**values)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, names)) from None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings`; raise :class:`ConfigError` with one readable line on any problem.

    ``overrides`` win over every source (the demo uses them).
    """
    extra: dict[str, Any] = {}
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"invalid configuration: --config {config_file}: no such file")
        extra["toml_file"] = config_file
    secrets_dir = os.environ.get(f"{PREFIX}SECRETS_DIR")
    if secrets_dir:
        if not Path(secrets_dir).is_dir():
            raise ConfigError(
                f"invalid configuration: {PREFIX}SECRETS_DIR: {secrets_dir} is not a directory"
            )
        extra["secrets_dir"] = secrets_dir
    cls: type[Settings] = Settings
    if extra:
        config = SettingsConfigDict(**{**Settings.model_config, **extra})  # type: ignore[typeddict-item]
        cls = type("FileSettings", (Settings,), {"model_config": config})
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
    except (ValueError, OSError) as exc:  # a TOML syntax error, an unreadable file
        raise ConfigError(f"invalid configuration: {redact_text(str(exc))}") from None


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per ``DLI_MONITOR_*`` variable that is no setting (a typo is silently
    ignored otherwise), naming the closest known one; values are never shown."""
    known = [name.upper() for name in Settings.model_fields]
    warnings = []
    for variable in sorted(environ):
        name = variable.upper()
        if not name.startswith(PREFIX) or name.removeprefix(PREFIX) in known:
            continue
        # Compared without the prefix, which every candidate shares.
        close = difflib.get_close_matches(name.removeprefix(PREFIX), known, n=1, cutoff=0.75)
        hint = f"; did you mean {PREFIX}{close[0]}?" if close else ""
        warnings.append(f"{variable} is not a known setting and is ignored{hint}")
    return warnings
