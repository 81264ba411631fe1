"""Who may send (write keys) and which web pages may read the answers (CORS).

A write key comes as the user of HTTP basic auth (password empty or
anything, as Segment's HTTP API takes it), as a bearer token, or where a
vendor puts it (Segment's ``writeKey``, GA4's ``api_secret``, Snowplow's
app id ``aid``); the handlers pick it. Keys are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Iterable, Mapping

# What a preflight is told: the methods, and how long a browser may keep the answer.
ALLOWED_METHODS = "GET, POST, OPTIONS"
PREFLIGHT_MAX_AGE_S = 86400


class WriteKeys:
    """The keys a sender must give one of; ``open`` (``--no-auth``) lets every request in."""

    def __init__(self, keys: Iterable[str], *, open: bool = False) -> None:
        self._keys = [key.encode() for key in keys if key]
        self.open = open

    def __bool__(self) -> bool:
        return self.open or bool(self._keys)

    def allows(self, key: str | None) -> bool:
        """Whether ``key`` is one of the keys (always, when open)."""
        if self.open:
            return True
        if not key:
            return False
        given = key.encode("utf-8", "replace")
        found = False
        for known in self._keys:  # every key compared: the time does not tell which one came close
            found |= hmac.compare_digest(given, known)
        return found


def credentials(headers: Mapping[str, str]) -> str | None:
    """The key in an ``Authorization`` header: basic auth's user, or a bearer token; None without one."""
    value = headers.get("Authorization", "").strip()
    scheme, _, rest = value.partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer" and rest:
        return rest
    if scheme.lower() != "basic" or not rest:
        return None
    try:
        decoded = base64.b64decode(rest, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user = decoded.partition(":")[0]
    return user or None


def is_loopback(bind: str) -> bool:
    """Whether ``bind`` is an address of this machine only (127.0.0.0/8, ::1, localhost)."""
    if bind.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind.strip().strip("[]")).is_loopback
    except ValueError:
        return False


class Cors:
    """The origins whose pages may read the collector's answers (``*``: any); none: same origin only."""

    def __init__(self, origins: Iterable[str]) -> None:
        cleaned = [origin.strip().rstrip("/") for origin in origins if origin.strip()]
        self.any = "*" in cleaned
        self.origins = frozenset(cleaned)

    def allows(self, origin: str | None) -> bool:
        return bool(origin) and (self.any or origin in self.origins)

    def headers(self, origin: str | None) -> dict[str, str]:
        """What an answer to a request from ``origin`` carries so that its page may read it.

        The origin itself rather than ``*``, and credentials allowed: Snowplow's tracker
        sends with credentials, which a wildcard answer would not let it read. The
        collector sets and reads no cookie, so nothing more is exposed by it.
        """
        if not self.allows(origin):
            return {}
        assert origin is not None
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    def preflight_headers(self, origin: str | None, requested_headers: str | None) -> dict[str, str] | None:
        """The answer to a preflight from ``origin``; None when that origin is not allowed."""
        if not self.allows(origin):
            return None
        answer = self.headers(origin)
        answer["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        answer["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
        if requested_headers:
            answer["Access-Control-Allow-Headers"] = requested_headers
        return answer
