"""Settings: defaults, then an optional TOML file, then AIEDIT_* environment variables, then
explicit overrides (command-line flags, test configs)."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

DEFAULT_PORT = 8790
DATABASE_FILE = "aiedit.sqlite3"
MODES = ("personal", "studio", "hosted")  # hosted = studio + accounts, credits, privacy
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("aiedit")))
    mode: str = "personal"  # personal | studio | hosted
    database_url: str = ""
    broker_url: str = ""  # studio: redis://host:port/db (Celery broker, events, cancel flags)
    workers: int = 4  # studio: API processes (gunicorn)
    heartbeat_s: float = 2.0  # studio: how often a worker reports it is alive
    worker_dead_after_s: float = 10.0  # studio: a silent worker's running job is queued again
    devices: list[str] = field(default_factory=list)
    # A 16-bit RGBA 8K UHD layer that does not compress: 7680 * 4320 * 4 * 2 B = 253.1 MiB, plus
    # its 8-bit mask (31.6 MiB) and the multipart framing: 288 MiB.
    max_upload_bytes: int = 288 * 1024 * 1024
    max_pixels: int = 8192 * 8192
    max_side: int = 16384
    max_output_pixels: int = 16384 * 16384
    retention_hours: float = 24.0  # uploads, results and jobs are deleted this long after the end
    privacy_contact: str = ""  # who to ask about personal data (an email address), on /privacy
    model_cache_bytes: int = 0
    catalog_file: str = ""
    lora_dir: str = ""  # a folder of LoRA safetensors files, each offered as `lora:<stem>`
    styles_file: str = ""  # user style presets (TOML), added to the built-in ones
    models_dir: str = ""  # weights files (spandrel, converted ncnn); empty: <data_dir>/models
    threads: int = 0  # waitress request threads; 0: 8 per core, at least 32 (request_threads)
    torch_threads: int = 0  # torch intra-op threads; 0: from cores and devices (engines/threads)
    opencv_threads: int = 0  # OpenCV threads; 0: the cores
    max_wait_s: float = 60.0
    rate_limit_per_minute: int = 600
    max_queued_per_owner: int = 64  # queued jobs one owner may have (0: no limit)
    max_queued: int = 1000  # queued jobs in total (0: no limit)
    min_free_bytes: int = 1 << 30  # new jobs are refused while the data dir has less free
    upload_slots: int = 2  # uploads decoded and stored at once; others wait (then 503)
    upload_slot_wait_s: float = 20.0
    max_long_polls: int = 0  # open long-polls in total; 0: threads // 2 - 1
    max_long_polls_per_key: int = 0  # open long-polls per caller; 0: half the total
    max_event_stream_s: float = 900.0  # an event stream ends after this (EventSource reconnects)
    max_live_sessions_per_owner: int = 2  # open live sessions one caller may have (0: no limit)
    max_live_sessions: int = 8  # open live sessions in total (0: no limit)
    job_timeout_s: float = 3600.0  # wall-clock limit per job run (0: none)
    max_classic_pixels: int = 36_000_000  # classic operations run uncancellable: cap their size
    cors_origins: list[str] = field(default_factory=list)  # browser origins allowed (CORS)
    log_format: str = ""  # json | text; empty: json in studio and hosted modes, text in personal
    log_level: str = "INFO"
    log_prompts: bool = False  # debug only: log job parameters (prompts) as submitted
    metrics_loopback: bool = True  # /metrics without a key from 127.0.0.1 (not behind a proxy!)
    admin_session_hours: float = 12.0
    # hosted mode: people's accounts (sign-up, account pages) and their abuse limits
    min_age: int = 13  # sign-up asks people to confirm they are at least this old
    account_session_hours: float = 24.0 * 14
    sign_ups_per_address_per_hour: int = 5  # sign-up attempts from one client address
    sign_in_failures_per_address_per_hour: int = 30  # wrong passwords from one address
    sign_in_failures_per_account_per_hour: int = 10  # wrong passwords for one account
    support_messages_per_day: int = 20  # support-form messages one account may send
    # Reverse proxies in front of the server whose X-Forwarded-For/-Proto are believed (a TLS
    # proxy: 1). 0: the client address is the connection's, so per-address limits need this
    # behind a proxy (otherwise every client shares the proxy's address).
    proxy_hops: int = 0
    allowed_hosts: list[str] = field(default_factory=list)  # Host names a key-less server answers
    # Jobs for a model that is not downloaded yet download it first, if an admin submitted them.
    # None: on for a personal server that never had an API key, off once a key was created.
    auto_download: bool | None = None
    # Hosted mode: credits and Stripe (see billing/ and docs/http-api.md)
    billing_file: str = ""  # TOML: pricing rates, credit packs and plans (price id -> credits)
    daily_credit_limit: int = 0  # credits an account may spend a day (0: no ceiling)
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""  # whsec_...: the webhook endpoint's signing secret
    stripe_api_base: str = ""  # another Stripe-compatible server (tests: a local one)
    billing_return_url: str = ""  # where Checkout sends people back; empty: <server>/account
    testing: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)} (got {self.mode!r})")
        if not self.retention_hours > 0:
            raise ValueError(f"retention_hours must be more than 0 (got {self.retention_hours})")

    @property
    def studio(self) -> bool:
        """Studio services (PostgreSQL, Redis, Celery workers, keys always): studio and hosted."""
        return self.mode in ("studio", "hosted")

    @property
    def hosted(self) -> bool:
        """Hosted: studio plus accounts, credits, billing and the privacy promises."""
        return self.mode == "hosted"

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / DATABASE_FILE}"

    @property
    def weights_dir(self) -> Path:
        return Path(self.models_dir).expanduser() if self.models_dir else self.data_dir / "models"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def logs_as_json(self) -> bool:
        if self.log_format not in ("", "json", "text"):
            raise ValueError(f"log_format must be json or text, not {self.log_format!r}")
        return self.log_format == "json" or (not self.log_format and self.mode != "personal")

    @property
    def request_threads(self) -> int:
        """waitress' request threads: the setting, or 8 per core and at least 32 (most of them
        wait in long-polls, so they are cheap; the count bounds concurrent requests)."""
        return self.threads if self.threads > 0 else max(32, 8 * (os.cpu_count() or 1))

    @property
    def long_poll_limits(self) -> tuple[int, int]:
        """(in total, per caller): below half the threads, so other requests always find one."""
        total = self.max_long_polls or max(1, self.request_threads // 2 - 1)
        return total, min(total, self.max_long_polls_per_key or max(1, total // 2))

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")

    @classmethod
    def load(cls, file: str | os.PathLike | None = None, environ=None, **overrides) -> Config:
        environ = os.environ if environ is None else environ
        values: dict = {}
        file = file or environ.get("AIEDIT_CONFIG")
        if file:
            with open(file, "rb") as fh:
                values.update(tomllib.load(fh).get("aiedit", {}))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name in fields:
            raw = environ.get(f"AIEDIT_{name.upper()}")
            if raw is not None and raw != "":
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(fields)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**{k: _coerce(fields[k], v) for k, v in values.items()})


def _coerce(f: dataclasses.Field, value):
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if not isinstance(value, str):
        return Path(value) if kind == "Path" else value
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind in ("bool", "bool | None"):
        return _boolean(f.name, value)
    if kind == "Path":
        return Path(value).expanduser()
    if kind.startswith("list"):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _boolean(name: str, value: str) -> bool | None:
    text = value.strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    if text in {"", "auto", "default"} and name == "auto_download":
        return None
    raise ValueError(f"{name}: {value!r} is not a yes/no value (use true or false)")
