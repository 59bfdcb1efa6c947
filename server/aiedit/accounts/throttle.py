"""Token buckets shared by every API process (hosted mode runs several): kept in Redis, updated
by one script so a check and its spending are one step. The same `wait`/`take` interface as the
in-process api.security.RateLimiter, which personal mode keeps using."""

from __future__ import annotations

import math

# KEYS[1] bucket; ARGV capacity, tokens per second, cost, spend (1/0). Redis' own clock, so
# processes on several machines agree. Returns the seconds to wait (0: allowed) as a string.
_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens = tonumber(v[1]) or capacity
local last = tonumber(v[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - last) * rate)
local wait = 0
if tokens >= cost then
  if ARGV[4] == '1' then tokens = tokens - cost end
else
  wait = (cost - tokens) / rate
end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'last', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
end
return tostring(wait)
"""


class RedisRateLimiter:
    """`capacity` tokens per `period_s`, refilled continuously; one bucket per `who`."""

    def __init__(self, client, name: str, capacity: int, period_s: float = 60.0):
        self.capacity = float(capacity)
        self.rate = capacity / period_s
        self._prefix = f"aiedit:throttle:{name}:"
        self._script = client.register_script(_SCRIPT)

    def _run(self, who: str, cost: float, spend: bool) -> float:
        result = self._script(
            keys=[self._prefix + who], args=[self.capacity, self.rate, cost, 1 if spend else 0]
        )
        return float(result)

    def wait(self, who: str, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens are there (0: now), spending nothing."""
        return self._run(who, cost, spend=False)

    def take(self, who: str, cost: float = 1.0) -> float:
        """Spend `cost` tokens; returns 0 when allowed, else the seconds to wait."""
        return self._run(who, cost, spend=True)


class AccountThrottles:
    """The sign-up, sign-in and support-form limits of the account pages (a setting of 0 turns
    one off), in Redis; without a broker (hosted code in one test process) in this process."""

    def __init__(self, config, client):
        from aiedit.api.security import RateLimiter

        def bucket(name: str, count: int, period_s: float = 3600.0):
            if count <= 0:
                return None
            if client is None:
                return RateLimiter(count, period_s=period_s)
            return RedisRateLimiter(client, name, count, period_s)

        self.sign_ups = bucket("sign-ups", config.sign_ups_per_address_per_hour)
        self.address_failures = bucket("sign-in-address",
                                       config.sign_in_failures_per_address_per_hour)
        self.account_failures = bucket("sign-in-account",
                                       config.sign_in_failures_per_account_per_hour)
        self.support = bucket("support", config.support_messages_per_day, 86400.0)


def redis_for(app):
    """The app's Redis client for throttles (hosted mode; made once per process), or None
    without a broker."""
    client = app.extensions.get("aiedit.redis")
    if client is None and app.extensions["aiedit"].config.broker_url:
        import redis

        client = redis.Redis.from_url(app.extensions["aiedit"].config.broker_url,
                                      socket_timeout=5, socket_connect_timeout=2)
        app.extensions["aiedit.redis"] = client
    return client


class Throttled(Exception):
    """Over a limit: `message` says which and how long to wait (`wait_s`)."""

    def __init__(self, message: str, wait_s: float):
        super().__init__(message)
        self.message, self.wait_s = message, wait_s


def check_password_attempt(throttles: AccountThrottles, config, address: str,
                           email: str) -> None:
    """Raise Throttled when this address or this account had too many wrong passwords."""
    checks = (
        (throttles.address_failures, f"addr:{address}",
         f"Too many failed sign-ins from this address (at most "
         f"{config.sign_in_failures_per_address_per_hour} an hour)"),
        (throttles.account_failures, _account_key(email),
         f"Too many failed sign-ins for this account (at most "
         f"{config.sign_in_failures_per_account_per_hour} an hour)"),
    )
    for limiter, who, text in checks:
        wait = limiter.wait(who) if limiter else 0.0
        if wait:
            raise Throttled(f"{text}: try again in {minutes(wait)}.", wait)


def charge_wrong_password(throttles: AccountThrottles, address: str, email: str) -> None:
    if throttles.address_failures:
        throttles.address_failures.take(f"addr:{address}")
    if throttles.account_failures:
        throttles.account_failures.take(_account_key(email))


def _account_key(email: str) -> str:
    return f"email:{(email or '').strip().lower()[:254]}"


def minutes(seconds: float) -> str:
    count = math.ceil(seconds / 60)
    return "1 minute" if count <= 1 else f"{count} minutes"
