"""The Host header check: URLs handed to clients name only this server's own, allowed, hosts.

`file_url`, `progress_url`, Progress `url` and `Link` headers are built from
PUBLIC_URL, or else from the request's Host. A Host not on ALLOWED_HOSTS
(plus the host of PUBLIC_URL) is refused with 400 before routing, so a URL
pointing elsewhere, which a client would follow with its bearer token, is
never made. The probes (/healthz, /readyz, /metrics) build no URL and answer
any Host: Kubernetes sends the pod's IP address.

`X-Forwarded-Host` is never read (uvicorn's proxy headers support takes only
X-Forwarded-Proto and X-Forwarded-For, from FORWARDED_ALLOW_IPS).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from consumer.api.errors import error_response

PROBES = frozenset({"/healthz", "/readyz", "/metrics"})

# A DNS name or an IPv4 address, or an IPv6 address in brackets; then an optional port.
_HOST = re.compile(r"(?P<host>[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")
_WILDCARD = re.compile(r"\*\.(?P<domain>[A-Za-z0-9_-][A-Za-z0-9_.-]*)")


def host_of(header: str) -> str | None:
    """The host part of a Host header value, lowercased; None when it is not a host[:port]."""
    match = _HOST.fullmatch(header)
    return match.group("host").lower() if match else None


def host_patterns(setting: str, public_url: str | None = None) -> tuple[str, ...]:
    """The patterns of ALLOWED_HOSTS (comma-separated), plus the host of PUBLIC_URL; ValueError naming a bad entry."""
    patterns = []
    for entry in (part.strip().lower() for part in setting.split(",")):
        if not entry:
            continue
        if entry != "*" and not _WILDCARD.fullmatch(entry) and host_of(entry) != entry:
            raise ValueError(f"ALLOWED_HOSTS: {entry!r} is not a host name, [IPv6] address, '*.domain' or '*' (no ports)")
        patterns.append(entry)
    if public_url:
        netloc = urlsplit(public_url).netloc.rpartition("@")[2]
        public_host = host_of(netloc)
        if public_host is None:
            raise ValueError(f"PUBLIC_URL: {public_url!r} has no host (give it as https://host[:port][/path])")
        patterns.append(public_host)
    return tuple(dict.fromkeys(patterns))


def is_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """Whether a host (as host_of gives it) matches: exactly, `*.domain` for any subdomain of domain, `*` for any."""
    return any(pattern == "*" or host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))
               for pattern in patterns)


class AllowedHosts:
    """Refuse (400, Canvas's error shape) a request whose Host is missing, repeated, malformed or not allowed."""

    def __init__(self, app: ASGIApp, patterns: tuple[str, ...]) -> None:
        self.app = app
        self.patterns = patterns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        problem = self.problem([value.decode("latin-1") for name, value in scope["headers"] if name == b"host"])
        if problem is not None:
            await error_response(400, problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def problem(self, values: list[str]) -> str | None:
        if len(values) != 1:
            return f"Host: expected one Host header (got {len(values)})"
        host = host_of(values[0])
        if host is None or not is_allowed(host, self.patterns):
            return f"Host: {values[0][:200]!r} is not a host this server answers (ALLOWED_HOSTS, PUBLIC_URL)"
        return None
