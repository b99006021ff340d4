"""One place that makes text safe to print: credentials in URLs are replaced by ``***``, and a
message meant as one line stays one line.

Every output path that may carry a user-supplied URL (events, configuration errors, ``check``)
goes through :func:`redact_url` / :func:`redact_text`; every line the command line prints on
stderr goes through :func:`one_line`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["one_line", "redact_text", "redact_url"]

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
