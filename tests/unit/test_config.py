"""Configuration rules, without a subprocess: typos named, blanks refused, TOML mistakes told."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.app.config import ConfigError, Settings, load_settings, unknown_variables

BASE = {"DLI_MONITOR_PROJECT_ID": "p1", "DLI_MONITOR_ENDPOINT": "http://127.0.0.1:9"}


def test_an_unknown_variable_is_a_warning_naming_the_closest_setting() -> None:
    environ = {
        "DLI_MONITOR_POLL_INTERVALL": "5",
        "dli_monitor_pagesize": "10",
        "DLI_MONITOR_FOO": "s3cr3t-value",
        "DLI_MONITOR_QUEUES": "etl",  # known, in any case
        "dli_monitor_queues": "etl",
        "HUAWEICLOUD_SDK_AK": "not ours to judge",
        "PATH": "/bin",
    }
    assert unknown_variables(environ) == [
        "DLI_MONITOR_FOO is not a known setting and is ignored",
        "DLI_MONITOR_POLL_INTERVALL is not a known setting and is ignored; "
        "did you mean DLI_MONITOR_POLL_INTERVAL?",
        "dli_monitor_pagesize is not a known setting and is ignored; "
        "did you mean DLI_MONITOR_PAGE_SIZE?",
    ]
    assert "s3cr3t" not in str(unknown_variables(environ)), "values are never shown"


@pytest.mark.parametrize("variable", ["DLI_MONITOR_AK", "DLI_MONITOR_SK", "DLI_MONITOR_TOKEN"])
@pytest.mark.parametrize("blank", ["", "  "])
def test_a_credential_set_but_blank_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, blank: str
) -> None:
    for name, value in {**BASE, "DLI_MONITOR_AK": "AK", "DLI_MONITOR_SK": "SK"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(variable, blank)
    if variable == "DLI_MONITOR_TOKEN":
        monkeypatch.setenv("DLI_MONITOR_AUTH", "token")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == f"invalid configuration: {variable}: is set but empty"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "DLI_MONITOR_POLL_INTERVAL = 5",
            "DLI_MONITOR_POLL_INTERVAL: is not a known setting (in a TOML file, write "
            "poll_interval without the DLI_MONITOR_ prefix)",
        ),
        ("queues = 5", "DLI_MONITOR_QUEUES: must be a comma-separated string or a list (got 5)"),
        ("queues = [1, 2]", "DLI_MONITOR_QUEUES: queue names are strings"),
        ("duration_buckets = 5", "DLI_MONITOR_DURATION_BUCKETS: must be a comma-separated"),
        # two le="10.0" series would make Prometheus reject the whole scrape
        (
            "duration_buckets = '10,10,60'",
            "DLI_MONITOR_DURATION_BUCKETS: must be positive numbers in increasing order",
        ),
        (
            "duration_buckets = '60,10'",
            "DLI_MONITOR_DURATION_BUCKETS: must be positive numbers in increasing order",
        ),
        (
            "duration_buckets = '0,10'",
            "DLI_MONITOR_DURATION_BUCKETS: must be positive numbers in increasing order",
        ),
        ("poll_interval = 'soon'", "DLI_MONITOR_POLL_INTERVAL: Input should be a valid number"),
        ("secret = 'hunter2-secret'", "DLI_MONITOR_SECRET: is not a known setting"),
        ("poll_interval = ", "Invalid value"),
    ],
)
def test_toml_mistakes_are_one_line_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, message: str
) -> None:
    for name, value in {**BASE, "DLI_MONITOR_AUTH": "none"}.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "config.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    text = str(caught.value)
    assert message in text and "\n" not in text, text
    assert "DLI_MONITOR_DLI_MONITOR" not in text and "hunter2" not in text


def test_a_missing_config_file_and_a_secrets_dir_that_is_not_one_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**BASE, "DLI_MONITOR_AUTH": "none"}.items():
        monkeypatch.setenv(name, value)
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(missing)
    assert str(caught.value) == f"invalid configuration: --config {missing}: no such file"
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    monkeypatch.setenv("DLI_MONITOR_SECRETS_DIR", str(not_a_dir))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == (
        f"invalid configuration: DLI_MONITOR_SECRETS_DIR: {not_a_dir} is not a directory"
    )


def test_keys_are_read_from_the_secrets_dir_a_mounted_secret_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in BASE.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dli_monitor_ak").write_text("FILEACCESSKEY")
    (tmp_path / "dli_monitor_sk").write_text("file-S3CRET-key")
    monkeypatch.setenv("DLI_MONITOR_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.secrets_dir == tmp_path
    assert settings.ak is not None and settings.ak.get_secret_value() == "FILEACCESSKEY"
    assert settings.credential_source == "secrets_dir"
    monkeypatch.delenv("DLI_MONITOR_SECRETS_DIR")
    with pytest.raises(ConfigError, match="DLI_MONITOR_AK"):
        load_settings()  # no directory, no keys: aksk has nothing to sign with


def test_a_hint_names_only_a_close_setting() -> None:
    """AUTHMODE is 0.67 alike to AUTH, TIMEOUT 0.64 to REQUEST_TIMEOUT: too far to guess."""
    assert unknown_variables({"DLI_MONITOR_AUTHMODE": "x", "DLI_MONITOR_TIMEOUT": "x"}) == [
        "DLI_MONITOR_AUTHMODE is not a known setting and is ignored",
        "DLI_MONITOR_TIMEOUT is not a known setting and is ignored",
    ]


def test_the_start_up_summary_is_the_configuration_without_secrets(tmp_path: Path) -> None:
    settings = Settings(
        project_id="p1",
        endpoint="http://u:pw-S3CRET@127.0.0.1:9",
        queues=("etl", "ml"),
        auth="none",
        state_file=tmp_path / "state.json",
    )
    assert settings.summary() == {
        "endpoint": "http://***@127.0.0.1:9",
        "queues": ["etl", "ml"],
        "poll_interval": 30.0,
        "poll_strategy": "auto",
        "page_size": 100,
        "max_concurrency": 4,
        "max_rps": 10.0,
        "max_rpm": None,
        "recount_interval": 600.0,
        "auth": "none",
        "credentials": "none",
        "listen": "0.0.0.0:10071",
        "state_file": str(tmp_path / "state.json"),
    }
    assert (
        Settings(project_id="p1", endpoint="http://127.0.0.1:9", auth="none").summary()[
            "state_file"
        ]
        is None
    )


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("0.0.0.0:10071", ("0.0.0.0", 10071)),
        (":65535", ("0.0.0.0", 65535)),  # no host: every interface
        ("[::1]:0", ("::1", 0)),
        ("[fe80::1]:80", ("fe80::1", 80)),  # the port is after the last colon
        ("127.0.0.1:65536", None),
        ("127.0.0.1", None),
        ("127.0.0.1:http", None),
    ],
)
def test_listen_is_host_and_a_port_from_0_to_65535(
    value: str, parsed: tuple[str, int] | None
) -> None:
    from monitor.app.config import parse_listen

    if parsed is None:
        with pytest.raises(ValueError, match=r"^must be host:port with a port from 0 to 65535$"):
            parse_listen(value)
    else:
        assert parse_listen(value) == parsed
