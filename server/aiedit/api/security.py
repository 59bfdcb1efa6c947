"""Rate limits, CORS and security headers, applied to every request and response.

- Rate limit: a token bucket per API key (per client address when no key is sent) holding
  `rate_limit_per_minute` tokens and refilling at that rate. A request costs one token; a
  long-poll (`GET /v1/jobs/{id}?wait=S`, S > 0) costs `LONG_POLL_COST`, since a plugin following
  a job asks again each time the job changes. `/v1/health` is never limited. Over the limit:
  `429` with `Retry-After`. `rate_limit_per_minute = 0` turns the limit off.
- CORS: none by default. The plugins are not web pages (GIMP and Krita use Python, Photoshop's
  UXP `fetch` is not bound by CORS) and the server's own pages are same-origin. Origins listed
  in `cors_origins` (or `*`) may call the API from a browser with a Bearer key; no cookies are
  ever involved, so credentials are never allowed.
- Headers on every response: `X-Content-Type-Options`, `X-Frame-Options`, `Referrer-Policy` and
  a Content-Security-Policy: `default-src 'none'` for data, a strict policy for HTML pages (the
  inline scripts of a page are allowed by their hash only).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import threading
import time

from flask import request

from aiedit.api.errors import ApiError, error_response

UNLIMITED_PATHS = ("/v1/health",)
LONG_POLL_COST = 0.2
MAX_TRACKED_CLIENTS = 10_000
CORS_ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key"
CORS_EXPOSE_HEADERS = (
    "X-Pagination, X-Image-Width, X-Image-Height, X-Offset-X, X-Offset-Y, Retry-After"
)
CORS_METHODS = "GET, POST, DELETE, OPTIONS"
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)


class RateLimiter:
    """Token buckets keyed by client identity; thread-safe."""

    def __init__(self, per_minute: int, clock=time.monotonic):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

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


def client_identity() -> str:
    """The presented key's id (not yet verified) or, without a key, the client address."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    parts = token.strip().split("_", 2)
    if scheme.lower() == "bearer" and len(parts) == 3 and parts[1].isalnum():
        return f"key:{parts[1][:32]}"
    return f"addr:{request.remote_addr or '?'}"


def request_cost() -> float:
    if request.method == "GET" and request.path.startswith("/v1/jobs/"):
        try:
            if float(request.args.get("wait", 0)) > 0:
                return LONG_POLL_COST
        except ValueError:
            pass
    return 1.0


def init_app(app) -> None:
    config = app.extensions["aiedit"].config
    limiter = RateLimiter(config.rate_limit_per_minute) if config.rate_limit_per_minute else None
    origins = set(config.cors_origins or [])

    @app.before_request
    def limit_rate():
        if request.method == "OPTIONS" and _cors_origin(origins):
            return _preflight(app)
        if limiter is None or not request.path.startswith("/v1/"):
            return None
        if request.path in UNLIMITED_PATHS:
            return None
        wait = limiter.take(client_identity(), request_cost())
        if wait:
            retry = max(1, math.ceil(wait))
            return error_response(
                ApiError(
                    429,
                    "rate_limited",
                    f"too many requests: this server allows {config.rate_limit_per_minute} a "
                    f"minute per key or address (setting rate_limit_per_minute); retry in "
                    f"{retry} s",
                    headers={"Retry-After": str(retry)},
                )
            )
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
    return PAGE_CSP.format(hashes=hashes)
