"""One place that makes text safe to print: credentials in URLs are replaced by ``***``, and a
message meant as one line stays one line.

Every output path that may carry a user-supplied URL (events, configuration errors, ``check``)
goes through :func:`redact_url` / :func:`redact_text`; every line the command line prints on
stderr goes through :func:`one_line`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "LOG_LINE_BYTES",
    "LOG_TAIL_BYTES",
    "log_tail",
    "one_line",
    "redact_secrets",
    "redact_text",
    "redact_url",
]

#: scheme://user[:password]@ anywhere in a text. The userinfo ends at the *last* "@" before the
#: authority ends (as urlsplit reads it): a password may itself hold "@" ("p@ss").
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s?#]*@")


def redact_url(url: str) -> str:
    """``url`` with its user and password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def redact_text(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)


def one_line(text: str) -> str:
    r"""``text`` with every character that is not printable written as its escape (``\\n``,
    ``\\x85``, ``\\u2028``): an argument or value echoed in an error cannot break its line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


#: a dead job's log tail in its event: this many bytes of UTF-8 at most, and each record cut
LOG_TAIL_BYTES = 2048
LOG_LINE_BYTES = 512

#: ``key=value`` / ``key: value`` where the key names a credential (Spark and Hadoop settings,
#: JDBC properties, CLI flags): the value goes
_SECRET_SETTING = re.compile(
    r"(?P<key>[\w.-]*(?:secret|passw(?:or)?d|pwd|token|credential|access[._-]?key|"
    r"secret[._-]?key|api[._-]?key|\bak|\bsk)[\w.-]*)(?P<sep>\s*[=:]\s*)(?P<value>[^\s,;&'\"]+)",
    re.IGNORECASE,
)
_AUTHORIZATION = re.compile(r"(?P<key>authorization\s*[:=]\s*)[^\r\n]*", re.IGNORECASE)
#: Huawei Cloud access keys (20 upper-case letters and digits) and secret keys (40 characters)
_AK = re.compile(r"\b[A-Z0-9]{20}\b")
_SK = re.compile(r"\b[A-Za-z0-9]{40}\b")


def redact_secrets(text: str) -> str:
    """``text`` with everything that looks like a credential replaced by ``***``: settings
    named like a secret, ``Authorization`` headers, credentials in URLs, AK/SK-shaped strings."""
    text = _AUTHORIZATION.sub(lambda m: f"{m['key']}***", text)
    text = _SECRET_SETTING.sub(lambda m: f"{m['key']}{m['sep']}***", text)
    text = redact_text(text)
    text = _SK.sub("***", text)
    return _AK.sub("***", text)


def log_tail(records: Sequence[str]) -> list[str]:
    """A dead job's last log records as its event shows them: redacted, each cut to
    :data:`LOG_LINE_BYTES`, the last ones that fit :data:`LOG_TAIL_BYTES` in all, in order."""
    tail: list[str] = []
    budget = LOG_TAIL_BYTES
    for record in reversed(records):
        # Bounded before it is redacted (what is shown is at most LOG_LINE_BYTES anyway), so a
        # huge record costs no more than a short one; cut after, so no secret is cut in two.
        line = redact_secrets(record[: 4 * LOG_LINE_BYTES])
        encoded = line.encode()
        if len(encoded) > LOG_LINE_BYTES:
            line = encoded[:LOG_LINE_BYTES].decode(errors="ignore") + "…"
            encoded = line.encode()
        if len(encoded) > budget:
            break
        budget -= len(encoded)
        tail.append(line)
    tail.reverse()
    return tail
