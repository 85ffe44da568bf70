"""Base URLs of model servers: credentials split off, redacted for display, normalised for identity.

A base URL may carry credentials (`http://user:pw@host/v1`). They are taken out of the URL as
soon as it is read: requests send them as HTTP Basic auth, and every URL that is shown (manifest,
summary, logs, errors, identities) is the URL without them, or with `***@` where it helps to see
that credentials were given.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """(the URL without user-info, (user, password) or None)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, (unquote(user), unquote(password))


def redact_url(url: str) -> str:
    """The URL with any user-info replaced by `***` (`http://***@host/v1`)."""
    clean, creds = split_credentials(url)
    if creds is None:
        return url
    parts = urlsplit(clean)
    return urlunsplit((parts.scheme, f"***@{parts.netloc}", parts.path, parts.query, parts.fragment))


def normalise_url(url: str) -> str:
    """One spelling per server: no credentials, lower-case scheme and host, no default port, no
    trailing slash (`HTTP://Host:80/v1/` -> `http://host/v1`)."""
    clean, _ = split_credentials(url)
    parts = urlsplit(clean.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def redact_text(text: str) -> str:
    """Any URL user-info in free text (a command line, a log message) replaced by `***`."""
    return _USERINFO.sub(r"\1***@", text)
