"""Browser guards, rate limits, CORS and security headers, applied to every request and response.

- Browser guards, before anything else runs (and before a body is read):
  - Host: a server that needs no key (loopback, no key ever created) answers only requests whose
    `Host` names loopback (`127.x`, `localhost`, `[::1]`), its configured host, or one of
    `allowed_hosts`; anything else is `403 host_not_allowed`. This defeats DNS rebinding, where a
    web page's own host name is pointed at 127.0.0.1.
  - Origin: a request carrying an `Origin` header must come from the server's own origin or one
    listed in `cors_origins`, else `403 origin_not_allowed`. `null` is refused unless listed or
    the browser marks the request `Sec-Fetch-Site: same-origin` (the server's own pages send no
    referrer, which makes their form posts carry `Origin: null`). A request without `Origin`
    that a browser marks `Sec-Fetch-Site: cross-site` is refused too.
    The plugins send no `Origin` (GIMP and Krita use Python; Photoshop's UXP `fetch` is not a web
    page), so none of this touches them.
  - `cors_origins = *` (or `null`) on a server that needs no key is refused at start.
- Rate limit: a token bucket per verified key owner (the local owner on a key-less server; a
  user's keys share their user's bucket, so in hosted mode it is per account; there the buckets
  live in Redis, so every API process counts the same requests)
  holding `rate_limit_per_minute` tokens and refilling at that rate. A request costs one token; a
  long-poll (`GET /v1/jobs/{id}?wait=S`, S > 0) costs `LONG_POLL_COST`, since a plugin following
  a job asks again each time the job changes. Failed authentications spend from a separate,
  smaller bucket per client address (`FAILED_AUTH_PER_MINUTE`), checked before a key is
  verified, so keys cannot be guessed quickly and a guesser cannot spend a real key's budget.
  `/v1/health` is never limited. Over a limit: `429` with `Retry-After`.
  `rate_limit_per_minute = 0` turns both limits off.
- CORS: none by default. Origins listed in `cors_origins` (or `*` on a server with keys) may
  call the API from a browser with a Bearer key; the API uses no cookies, so credentials are
  never allowed.
- Headers on every response: `X-Content-Type-Options`, `X-Frame-Options`, `Referrer-Policy` and
  a Content-Security-Policy: `default-src 'none'` for data, a strict policy for HTML pages (the
  inline scripts of a page are allowed by their hash only).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import math
import re
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import g, request

from aiedit.api.errors import ApiError, error_response

if TYPE_CHECKING:
    from aiedit.auth.keys import KeyPolicy
    from aiedit.config import Config

UNLIMITED_PATHS = ("/v1/health",)
LONG_POLL_COST = 0.2
FAILED_AUTH_PER_MINUTE = 30
WILDCARD_ORIGINS = ("*", "null")
MAX_TRACKED_CLIENTS = 10_000
CORS_ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, Aiedit-Request"
CORS_EXPOSE_HEADERS = (
    "X-Pagination, X-Image-Width, X-Image-Height, X-Offset-X, X-Offset-Y, Retry-After"
)
CORS_METHODS = "GET, POST, DELETE, OPTIONS"
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'{form_targets}"
)
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)


class RateLimiter:
    """Token buckets keyed by client identity; thread-safe."""

    def __init__(self, per_minute: int, clock=time.monotonic, period_s: float = 60.0):
        """`per_minute` tokens per `period_s` (a minute unless told otherwise)."""
        self.capacity = float(per_minute)
        self.rate = per_minute / period_s
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait(self, who: str, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens are there (0: now), spending nothing."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(who, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        return 0.0 if tokens >= cost else (cost - tokens) / self.rate

    def take(self, who: str, cost: float = 1.0) -> float:
        """Spend `cost` tokens; returns 0 when allowed, else the seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(who, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= cost:
                self._buckets[who] = (tokens - cost, now)
                self._forget_idle(now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (cost - tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        """A bucket that has refilled is the same as no bucket: drop those when many pile up."""
        if len(self._buckets) <= MAX_TRACKED_CLIENTS:
            return
        full_after = self.capacity / self.rate
        self._buckets = {
            who: (tokens, last)
            for who, (tokens, last) in self._buckets.items()
            if now - last < full_after
        }


class RateLimits:
    """The request limiter (per verified owner) and the failed-authentication limiter (per
    client address); both None when `rate_limit_per_minute` is 0."""

    def __init__(self, config: Config, make_limiter=None):
        """`make_limiter(name, per_minute)` builds a limiter (default: in this process; hosted
        mode passes one whose buckets live in Redis, shared by every API process)."""
        make = make_limiter or (lambda name, per_minute: RateLimiter(per_minute))
        self.per_minute = config.rate_limit_per_minute
        self.failures_per_minute = FAILED_AUTH_PER_MINUTE
        self.per = "account" if config.hosted else "key"
        self.requests = make("requests", self.per_minute) if self.per_minute else None
        self.failures = make("auth-failures", FAILED_AUTH_PER_MINUTE) if self.per_minute else None

    def failures_wait(self, address: str) -> float:
        return self.failures.wait(f"addr:{address}") if self.failures else 0.0

    def charge_failure(self, address: str) -> None:
        if self.failures:
            self.failures.take(f"addr:{address}")


def request_cost() -> float:
    if request.method == "GET" and request.path.startswith("/v1/jobs/"):
        try:
            if float(request.args.get("wait", 0)) > 0:
                return LONG_POLL_COST
        except ValueError:
            pass
    return 1.0


def init_app(app, policy: KeyPolicy) -> None:
    """Browser guards, CORS and headers. Raises ValueError for a wildcard CORS origin on a server
    that needs no key (any web page could then drive it)."""
    config = app.extensions["aiedit"].config
    origins = set(config.cors_origins or [])
    wildcards = origins.intersection(WILDCARD_ORIGINS)
    if wildcards and not policy.required():
        raise ValueError(
            f"cors_origins = {', '.join(sorted(wildcards))} would let any web page use this "
            "server, which needs no API key (it listens on loopback and no key was ever "
            "created). List the exact origins that may call it (AIEDIT_CORS_ORIGINS="
            "https://panel.example), or create a key first with `aiedit keys create --name NAME`."
        )
    hosts = allowed_host_names(config)

    @app.before_request
    def guard():
        host = request.headers.get("Host")
        if not policy.required() and not _host_allowed(host, hosts):
            raise ApiError(
                403,
                "host_not_allowed",
                f"this server does not answer to the host name {host[:100]!r}: it needs no "
                "API key, so it answers only to loopback names (127.0.0.1, localhost, [::1]) "
                "and those listed in the allowed_hosts setting (AIEDIT_ALLOWED_HOSTS)",
            )
        if not _origin_allowed(origins):
            origin = request.headers.get("Origin")
            source = f"the web page origin {origin[:100]!r}" if origin else "another site"
            raise ApiError(
                403,
                "origin_not_allowed",
                f"requests from {source} are not allowed: only origins listed in the "
                "cors_origins setting (AIEDIT_CORS_ORIGINS) may call this server from a browser",
            )
        if request.method == "OPTIONS" and _cors_origin(origins):
            return _preflight(app)
        return None

    @app.after_request
    def secure(response):
        _security_headers(response)
        if origins and "*" not in origins:
            response.vary.add("Origin")  # the answer depends on who asks: caches must know
        origin = _cors_origin(origins)
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
        return response


def init_rate_limits(app, limits: RateLimits) -> None:
    """Per-owner request limits; runs after the caller is identified (api/auth.py)."""

    @app.before_request
    def limit_rate():
        if limits.requests is None or not request.path.startswith("/v1/"):
            return None
        if request.path in UNLIMITED_PATHS:
            return None
        principal = g.get("principal")
        who = f"owner:{principal.owner}" if principal else f"addr:{request.remote_addr or '?'}"
        wait = limits.requests.take(who, request_cost())
        if wait:
            retry = max(1, math.ceil(wait))
            return error_response(
                ApiError(
                    429,
                    "rate_limited",
                    f"too many requests: this server allows {limits.per_minute} a minute per "
                    f"{limits.per} (setting rate_limit_per_minute); retry in {retry} s",
                    headers={"Retry-After": str(retry)},
                )
            )
        return None


def allowed_host_names(config: Config) -> set[str]:
    """Host names (without port) a key-less server answers to, besides loopback ones."""
    names = {_host_name(host) for host in config.allowed_hosts}
    configured = _host_name(config.host)
    if configured not in ("", "0.0.0.0", "::"):
        names.add(configured)
    return names


def _host_name(host: str) -> str:
    """`Host` header or setting → lower-case name without port, brackets or trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _host_allowed(header: str | None, allowed: set[str]) -> bool:
    if header is None:
        return True  # not a browser: every browser sends Host
    name = _host_name(header)
    if name == "localhost" or name in allowed:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _origin_allowed(origins: set[str]) -> bool:
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site", "").lower()  # set by browsers, never by pages
    if origin is None:
        return site != "cross-site"
    if origin in origins or ("*" in origins and origin != "null"):
        return True
    if origin == "null":
        # The server's own pages send no referrer, so browsers send `Origin: null` on their
        # POSTs; they also say whether the request comes from the same origin.
        return site == "same-origin"
    own = request.headers.get("Host", "").lower()
    return bool(own) and urlsplit(origin.lower()).netloc == own


def _cors_origin(origins: set[str]) -> str | None:
    """The value for Access-Control-Allow-Origin, or None when this origin is not allowed."""
    origin = request.headers.get("Origin")
    if not origin or not origins:
        return None
    if "*" in origins:
        return "*"
    return origin if origin in origins else None


def _preflight(app):
    response = app.response_class(status=204)
    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
    response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    return response


def _security_headers(response) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype == "text/html" and not response.direct_passthrough:
        headers["Content-Security-Policy"] = _page_csp(response.get_data())
    else:
        headers.setdefault("Content-Security-Policy", DATA_CSP)


def _page_csp(html: bytes) -> str:
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode()}'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    # A page whose form is answered with a redirect elsewhere (the account page's "Buy" button
    # goes on to the payment provider) names that origin in g.form_action_origins.
    targets = "".join(f" {origin}" for origin in g.get("form_action_origins", ()))
    return PAGE_CSP.format(hashes=hashes, form_targets=targets)
