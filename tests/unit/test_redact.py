"""No secret in any output: configuration errors and URLs with credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from monitor.app.config import ConfigError, Settings, load_settings
from monitor.output.redact import one_line, redact_text, redact_url
from tests.leakscan import find_leaks

SECRET = "pa55-S3CRET-9d8f"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"http://admin:{SECRET}@127.0.0.1:8080/x", "http://***@127.0.0.1:8080/x"),
        (f"https://{SECRET}@dli.example.com", "https://***@dli.example.com"),
        # a password with "@" in it: the userinfo ends at the last "@" of the authority
        ("https://user:p@ss@host/x", "https://***@host/x"),
        (f"http://u:{SECRET}@@127.0.0.1:9/a@b?c=d@e", "http://***@127.0.0.1:9/a@b?c=d@e"),
        ("http://127.0.0.1:9/path@x?q=a@b", "http://127.0.0.1:9/path@x?q=a@b"),
        ("https://dli.cn-north-4.myhuaweicloud.com", "https://dli.cn-north-4.myhuaweicloud.com"),
    ],
)
def test_credentials_in_a_url_are_replaced(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_text(f"cannot reach {url} now") == f"cannot reach {shown} now"


@given(
    user=st.text(
        alphabet=st.characters(
            blacklist_characters="/?#@ \t\n\r\x0b\x0c",
            blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"),
        ),
        min_size=1,
    ),
    password=st.text(
        alphabet=st.characters(
            blacklist_characters="/?#", blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")
        ),
        min_size=1,
    ),
)
@example(user="user", password="p@ss")
def test_no_part_of_a_url_password_survives_redaction(user: str, password: str) -> None:
    url = f"https://{user}:{password}@127.0.0.1:9/x"
    assert redact_url(url) == "https://***@127.0.0.1:9/x"
    assert redact_text(f"cannot reach {url} now") == "cannot reach https://***@127.0.0.1:9/x now"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("unrecognized arguments: --bogus \x85", "unrecognized arguments: --bogus \\x85"),
        ("a\nb\rc\u2028d\x1be", "a\\nb\\rc\\u2028d\\x1be"),
        ("queue 'ü-etl' is fine", "queue 'ü-etl' is fine"),
        ("a back\\slash and \"quotes\" 'stay'", "a back\\slash and \"quotes\" 'stay'"),
        ("mixed \\ and \n", "mixed \\ and \\n"),
    ],
)
def test_one_line_escapes_what_would_break_or_hide_the_line(text: str, shown: str) -> None:
    assert one_line(text) == shown
    assert len(one_line(text).splitlines()) == 1


@pytest.mark.parametrize("key", ["secret_key", "secret", "password", "sk_value"])
def test_an_unknown_toml_key_never_shows_its_value(tmp_path: Path, key: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'project_id = "p1"\nauth = "none"\nendpoint = "http://127.0.0.1:1"\n'
                      f'{key} = "{SECRET}"\n')  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert "is not a known setting" in str(info.value)
    assert SECRET not in str(info.value)


def test_a_bad_endpoint_with_credentials_is_named_without_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DLI_MONITOR_PROJECT_ID", "p1")
    monkeypatch.setenv("DLI_MONITOR_AUTH", "none")
    monkeypatch.setenv("DLI_MONITOR_ENDPOINT", f"ftp://admin:{SECRET}@127.0.0.1/")
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert "DLI_MONITOR_ENDPOINT" in str(info.value) and SECRET not in str(info.value)
    assert "ftp://***@127.0.0.1/" in str(info.value)


def test_the_start_up_summary_shows_the_endpoint_without_credentials() -> None:
    settings = Settings(project_id="p1", endpoint=f"http://admin:{SECRET}@127.0.0.1:9", auth="none")
    assert settings.summary()["endpoint"] == "http://***@127.0.0.1:9"
    assert SECRET not in repr(settings.summary())


def test_the_leak_scan_finds_markers_and_url_credentials_and_nothing_else() -> None:
    """The suite-wide scan (tests/leakscan.py) must be able to fail."""
    assert find_leaks('{"sk": "sk-S3CRET-1"}')
    assert find_leaks("GET http://admin:pa55@127.0.0.1:9/x")
    assert find_leaks("endpoint=https://u:p@dli.example.com")
    assert find_leaks("https://user:p@ss@host/x")
    assert find_leaks("https://***@ss@host/x"), "what a redaction stopping at the first @ left"
    assert not find_leaks("http://***@127.0.0.1:9 and http://127.0.0.1:9/v2.0/p1/batches")
    assert not find_leaks("DLI_MONITOR_SK is set but empty; see DLI_MONITOR_SECRETS_DIR")
