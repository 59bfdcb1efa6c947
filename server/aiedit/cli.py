"""Command line: aiedit serve | worker | db | users | keys | credits | blocklist | models |
plugins | doctor."""

from __future__ import annotations

import logging
import signal
import sys

import click

from aiedit import __version__, memory
from aiedit.config import DEFAULT_PORT, Config

log = logging.getLogger("aiedit")


REQUEST_MEMORY_BYTES = 96 << 20  # a 4096² RGBA layer (64 MiB) and its mask (16 MiB) fit
EXTRA_CONNECTIONS = 8  # idle keep-alive connections beyond the busy threads


def _config(data_dir=None, **overrides) -> Config:
    try:
        return Config.load(data_dir=data_dir, **overrides)
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def _configure_logging(config: Config) -> None:
    from aiedit import logs

    try:
        logs.configure(config)
    except ValueError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def _services(config: Config):
    from aiedit.services import Services

    try:
        return Services.build(config)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None


def _database(config: Config):
    """The database alone (tools that manage it: no queue, no broker)."""
    from aiedit.store.db import Database

    if config.studio and not config.database_url:
        raise click.ClickException("studio mode needs AIEDIT_DATABASE_URL")
    return Database(config.database)


def _managed_db(data_dir):
    """The database for user and key commands: migrated in personal mode, checked in studio."""
    config = _config(data_dir)
    if not config.studio:
        return _services(config).db
    db = _database(config)
    try:
        db.check_current()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    return db


@click.group()
@click.version_option(__version__, prog_name="aiedit")
def main():
    """aiedit: AI image operations for GIMP, Krita and Photoshop."""


@main.command()
@click.option("--host", default=None, help="Address to bind (env AIEDIT_HOST; default 127.0.0.1)")
@click.option(
    "--port", type=int, default=None, help=f"Port (env AIEDIT_PORT; default {DEFAULT_PORT})"
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Jobs, files and database (env AIEDIT_DATA_DIR; default: user data dir)",
)
@click.option("--workers", type=int, default=None,
              help="Studio mode: API processes (env AIEDIT_WORKERS; default 4)")
def serve(host, port, data_dir, workers):
    """Run the server (personal mode: one process, embedded queue; studio mode: API processes,
    jobs run by `aiedit worker`)."""
    from waitress import create_server

    from aiedit.app import create_app
    from aiedit.auth.keys import keys_exist
    from aiedit.store import datadir

    config = _config(host=host, port=port, data_dir=data_dir, workers=workers)
    _configure_logging(config)
    memory.keep_freed_memory()  # every request decodes an upload (the API processes fork)
    datadir.prepare(config.data_dir, config.database, config.blob_dir)
    if config.studio:
        return _serve_studio(config)  # many processes share the data dir: no lock
    try:
        lock = datadir.DataDirLock(config.data_dir).acquire()  # held until this process ends
    except datadir.DataDirBusy as exc:
        raise click.ClickException(str(exc)) from None
    _prepare_threads(config)
    services = _services(config)
    if not config.is_loopback and not keys_exist(services.db):
        services.stop()
        raise click.ClickException(
            f"refusing to listen on {config.host}: beyond loopback every request needs an API "
            "key, and no active key exists. Create one first with "
            "`aiedit keys create --name NAME` (same --data-dir), or bind to 127.0.0.1."
        )
    try:
        app = create_app(config, services=services)
    except ValueError as exc:
        services.stop()
        raise click.ClickException(f"configuration: {exc}") from None
    server = create_server(app, host=config.host, port=config.port, **waitress_settings(config))

    def shutdown(signum, frame):
        log.info("stopping")
        server.close()

    signal.signal(signal.SIGTERM, shutdown)
    log.info(
        "aiedit %s serving on http://%s:%s (data: %s)",
        __version__, config.host, server.effective_port, config.data_dir,
    )
    try:
        server.run()
    except (KeyboardInterrupt, OSError):
        pass
    finally:
        services.stop()
        lock.release()


def _prepare_threads(config: Config) -> None:
    """Thread counts for torch, OpenMP and OpenCV, set before any of them is imported."""
    from aiedit.engines import threads

    chosen = threads.plan(config)
    threads.prepare_process(chosen)
    log.info("threads: %s", "; ".join(chosen.describe()))


def waitress_settings(config: Config) -> dict:
    """Big images move through memory buffers, not waitress' temporary files, up to a 4096²
    RGBA layer with its mask; larger request bodies spill to a temporary file. Waitress reads
    whole bodies before the app (and its key check) sees them, so the number of connections is
    kept near the number of threads: at most that many bodies are held at once."""
    request_buffer = min(config.max_upload_bytes + (1 << 16), REQUEST_MEMORY_BYTES)
    response_buffer = min(config.max_upload_bytes + (1 << 16), 256 << 20)
    return {
        "threads": config.request_threads,
        "connection_limit": config.request_threads + EXTRA_CONNECTIONS,
        "channel_timeout": 120,
        "max_request_body_size": config.max_upload_bytes + (1 << 16),
        "inbuf_overflow": request_buffer,
        "outbuf_overflow": response_buffer,
        "recv_bytes": 1 << 18,
        "clear_untrusted_proxy_headers": True,
        "ident": "aiedit",
    }


@main.group()
def keys():
    """Create, list and revoke API keys."""


def _data_dir_option(f):
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="The server's data directory (env AIEDIT_DATA_DIR)",
    )(f)


@keys.command("create")
@click.option("--name", required=True, help="Who or what the key is for")
@click.option("--role", type=click.Choice(["user", "admin"]), default="user",
              help="For a key without --user (a key of a user has the user's role)")
@click.option("--user", default=None, help="The user the key belongs to (acts as them)")
@_data_dir_option
def keys_create(name, role, user, data_dir):
    """Create a key and print it (it is shown only once)."""
    from aiedit.auth.keys import create_key

    try:
        row, key = create_key(_managed_db(data_dir), name, role, user=user)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(key)
    who = f"user {user}, {row.role}" if user else row.role
    click.echo(
        f"created key {row.id} ({name}, {who}); store it now: it cannot be shown again", err=True
    )


@keys.command("list")
@_data_dir_option
def keys_list(data_dir):
    """List keys (never their secrets)."""
    from aiedit.auth.keys import list_keys

    for row in list_keys(_managed_db(data_dir)):
        state = "revoked" if row.revoked_at else "active"
        user = f"  (user {row.user})" if row.user else ""
        click.echo(
            f"{row.id}  {row.role:5}  {state:7}  {row.created_at:%Y-%m-%d}  {row.name}{user}"
        )


@keys.command("revoke")
@click.argument("key_id")
@_data_dir_option
def keys_revoke(key_id, data_dir):
    """Revoke a key by its id and cancel its queued and running jobs."""
    from aiedit.auth.keys import revoke_key

    services = _services(_config(data_dir))
    try:
        if not revoke_key(services.runner, key_id):
            raise click.ClickException(f"no active key {key_id}")
    finally:
        services.stop()
    click.echo(f"revoked {key_id}; its queued and running jobs are canceled")


@main.group()
def db():
    """Manage the database schema."""


@db.command("upgrade")
@_data_dir_option
def db_upgrade(data_dir):
    """Bring the database schema up to date (Alembic; SQLite and PostgreSQL alike)."""
    config = _config(data_dir)
    if not config.database_url:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    database = _database(config)
    before, head = database.revisions()
    database.migrate()
    database.dispose()
    if before == head:
        click.echo(f"database already at {head}")
    else:
        click.echo(f"database upgraded from {before or 'empty'} to {head}")


@main.group()
def users():
    """Create and list users, set their limits (studio mode)."""


@users.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "member"]), default="member",
              show_default=True)
@_data_dir_option
def users_create(name, role, data_dir):
    """Create a user; give them keys with `aiedit keys create --name N --user NAME`."""
    from aiedit.auth.users import UserError, create_user

    try:
        create_user(_managed_db(data_dir), name, role)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created user {name} ({role})")


@users.command("list")
@_data_dir_option
def users_list(data_dir):
    """List users, their roles and limits."""
    from aiedit.auth.users import list_users

    for user in list_users(_managed_db(data_dir)):
        queued = "-" if user.max_queued is None else str(user.max_queued)
        units = "-" if user.daily_units is None else f"{user.daily_units:g}"
        click.echo(f"{user.name:24} {user.role:6}  max-queued {queued:>5}  daily-units {units}")


@users.command("limit")
@click.argument("name")
@click.option("--max-queued", type=int, default=None,
              help="Most unfinished jobs at once (-1: no limit)")
@click.option("--daily-units", type=float, default=None,
              help="Most cost units a day, reset at 00:00 UTC (-1: no limit)")
@click.option("--clear", is_flag=True, help="Remove both limits")
@_data_dir_option
def users_limit(name, max_queued, daily_units, clear, data_dir):
    """Set a user's limits; jobs over a limit are refused with 429."""
    from aiedit.auth.users import UserError, set_limits

    if max_queued is None and daily_units is None and not clear:
        raise click.UsageError("give --max-queued, --daily-units or --clear")
    try:
        user = set_limits(_managed_db(data_dir), name, max_queued, daily_units, clear)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    queued = "none" if user.max_queued is None else user.max_queued
    units = "none" if user.daily_units is None else f"{user.daily_units:g}"
    click.echo(f"{name}: max-queued {queued}, daily-units {units}")


def _user_services(data_dir, name):
    from aiedit.auth.users import get_user

    services = _services(_config(data_dir))
    if get_user(services.db, name) is None:
        services.stop()
        raise click.ClickException(f"no user {name!r} (`aiedit users list` shows them)")
    return services


@users.command("suspend")
@click.argument("name")
@click.option("--reason", default="", help="Shown to the user's keys and on the admin page")
@_data_dir_option
def users_suspend(name, reason, data_dir):
    """Suspend a user's account: keys answer 403, unfinished jobs are canceled (credits back)."""
    from aiedit.billing.suspension import suspend

    services = _user_services(data_dir, name)
    try:
        canceled = suspend(services.runner, name, reason)
    finally:
        services.stop()
    if canceled is None:
        click.echo(f"{name} is already suspended")
    else:
        click.echo(f"suspended {name}; {len(canceled)} unfinished job(s) canceled")


@users.command("unsuspend")
@click.argument("name")
@_data_dir_option
def users_unsuspend(name, data_dir):
    """Lift a suspension: the user's keys work again."""
    from aiedit.billing.suspension import unsuspend

    services = _user_services(data_dir, name)
    try:
        changed = unsuspend(services.runner, name)
    finally:
        services.stop()
    click.echo(f"{name} is no longer suspended" if changed else f"{name} was not suspended")


@users.command("erase")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation")
@_data_dir_option
def users_erase(name, yes, data_dir):
    """Erase a user and everything of theirs: jobs and their files, keys, sessions, support
    messages; credit ledger rows stay only as anonymous amounts (tax records)."""
    from aiedit.privacy import UnknownUser
    from aiedit.privacy.erase import erase_user

    if not yes:
        click.confirm(f"Erase user {name} and all their data? This cannot be undone", abort=True)
    services = _services(_config(data_dir))
    try:
        erased = erase_user(services, name)
    except UnknownUser:
        raise click.ClickException(f"no user {name!r} (`aiedit users list` shows them)") from None
    finally:
        services.stop()
    click.echo(f"erased {name}: {erased.jobs} job(s), {erased.keys} key(s); "
               f"{erased.ledger_rows_anonymised} ledger row(s) kept as anonymous amounts")


@main.group()
def credits():
    """Credits (hosted mode): every change is a row in the ledger."""


@credits.command("grant", context_settings={"ignore_unknown_options": True})  # N may be -5
@click.argument("user")
@click.argument("amount", type=int)
@click.option("--reason", required=True, help="Why (kept in the ledger)")
@_data_dir_option
def credits_grant(user, amount, reason, data_dir):
    """Give USER AMOUNT credits (a negative AMOUNT takes them away, never below 0)."""
    from aiedit.billing import ledger

    db = _managed_db(data_dir)
    account = _credit_account(db, user)
    try:
        ledger.grant(db, account.id, amount, reason)
    except ledger.CreditError as exc:
        raise click.ClickException(exc.message) from None
    with db.session() as s:
        balance = ledger.balance(s, account.id)
    click.echo(f"{user}: {amount:+d} credits ({reason}); balance {balance}")


@credits.command("show")
@click.argument("user")
@click.option("--last", type=int, default=10, show_default=True, help="Ledger rows to list")
@_data_dir_option
def credits_show(user, last, data_dir):
    """A user's balance, daily ceiling and latest ledger rows."""
    from aiedit.billing import ledger

    db = _managed_db(data_dir)
    account = _credit_account(db, user)
    with db.session() as s:
        balance, held = ledger.balance(s, account.id), ledger.held(s, account.id)
        rows = ledger.entries(s, account.id, limit=last)
    ceiling = account.daily_credit_limit
    click.echo(f"{user}: balance {balance}, held {held}, daily ceiling "
               f"{'server default' if ceiling is None else ceiling}"
               + (", SUSPENDED" if account.suspended_at else "")
               + (f", FLAGGED: {account.flag_reason}" if account.flagged_at else ""))
    for row in rows:
        job = f"job {row.job_id} " if row.job_id else ""
        click.echo(f"  {row.created_at:%Y-%m-%d %H:%M}  {row.kind:12} {row.amount:+7d}  "
                   f"{job}{row.reason}".rstrip())


@credits.command("ceiling", context_settings={"ignore_unknown_options": True})
@click.argument("user")
@click.argument("credits_per_day", type=int)
@_data_dir_option
def credits_ceiling(user, credits_per_day, data_dir):
    """Set USER's daily spend ceiling (0: none for this account; -1: the server default,
    AIEDIT_DAILY_CREDIT_LIMIT)."""
    from sqlalchemy import update

    from aiedit.store.models import Account

    db = _managed_db(data_dir)
    account = _credit_account(db, user)
    value = None if credits_per_day < 0 else credits_per_day
    with db.session() as s:
        s.execute(update(Account).where(Account.id == account.id)
                  .values(daily_credit_limit=value))
    shown = "the server default" if value is None else ("none" if value == 0 else value)
    click.echo(f"{user}: daily ceiling {shown}")


def _credit_account(db, user):
    from aiedit.auth.users import get_user
    from aiedit.billing import ledger

    if get_user(db, user) is None:
        raise click.ClickException(f"no user {user!r} (`aiedit users list` shows them)")
    return ledger.ensure_account(db, user)


@main.group()
def blocklist():
    """Words and phrases refused in prompts (422 prompt_refused before a job is queued)."""


@blocklist.command("add")
@click.argument("terms", nargs=-1, required=True)
@_data_dir_option
def blocklist_add(terms, data_dir):
    """Refuse prompts holding TERMS (case, accents, look-alike letters and separators between
    letters do not matter; a trailing * also refuses longer words that start with the term)."""
    from aiedit.auth.blocklist import BlocklistError, add_term

    db = _managed_db(data_dir)
    for term in terms:
        try:
            row = add_term(db, term)
        except BlocklistError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"added {row.term!r} (matched as {row.key})")


@blocklist.command("remove")
@click.argument("terms", nargs=-1, required=True)
@_data_dir_option
def blocklist_remove(terms, data_dir):
    """Stop refusing TERMS."""
    from aiedit.auth.blocklist import BlocklistError, remove_term

    db = _managed_db(data_dir)
    for term in terms:
        try:
            removed = remove_term(db, term)
        except BlocklistError as exc:
            raise click.ClickException(str(exc)) from None
        if not removed:
            raise click.ClickException(f"{term!r} is not on the block list")
        click.echo(f"removed {term!r}")


@blocklist.command("list")
@_data_dir_option
def blocklist_list(data_dir):
    """List the terms and how many prompts each account had refused."""
    from aiedit.auth.blocklist import list_terms, refusals

    db = _managed_db(data_dir)
    for row in list_terms(db):
        click.echo(f"{row.key:24} {row.term}")
    counts = refusals(db)
    if counts:
        click.echo("refused prompts per account:", err=True)
        for owner, row in sorted(counts.items()):
            click.echo(f"  {owner:24} {row.count:6}  last {row.last_at:%Y-%m-%d %H:%M}", err=True)


@main.command()
@click.option("--device", default="cpu", show_default=True,
              help="The device this worker runs jobs on: cpu, cuda:0, ...")
@click.option("--name", default=None, help="Worker name (default: host-pid-device)")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Blobs folder shared with the API (env AIEDIT_DATA_DIR)")
def worker(device, name, data_dir):
    """Run jobs (studio mode): a Celery worker, one job at a time on DEVICE."""
    from aiedit.jobs.worker import DeviceBusy, StudioWorker, claim_device

    config = _config(data_dir, devices=[device])
    _configure_logging(config)
    _prepare_threads(config)
    memory.keep_freed_memory()  # every job decodes its inputs and encodes its results
    if not config.studio:
        raise click.ClickException(
            "`aiedit worker` is for studio mode: set AIEDIT_MODE=studio, AIEDIT_DATABASE_URL "
            "and AIEDIT_BROKER_URL (personal mode runs jobs inside `aiedit serve`)"
        )
    try:
        claim_device(device)  # held until this process ends
    except DeviceBusy as exc:
        raise click.ClickException(str(exc)) from None
    StudioWorker(_services(config), device, name=name).run()


def _serve_studio(config: Config) -> None:
    """API processes under gunicorn; each builds its own services after the fork."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger as GunicornLogger

    from aiedit.auth.keys import keys_exist

    probe = _services(config)  # fails early: schema not upgraded, broker or database missing
    if not config.is_loopback and not keys_exist(probe.db):
        probe.db.dispose()
        raise click.ClickException(
            f"refusing to listen on {config.host}: no API key exists. Create users and keys "
            "first (`aiedit users create NAME`, `aiedit keys create --name N --user NAME`)."
        )
    probe.db.dispose()

    class RootLogger(GunicornLogger):
        """gunicorn's own lines go through the configured handler (JSON or text) too."""

        def setup(self, cfg):
            super().setup(cfg)
            for logger in (self.error_log, self.access_log):
                logger.handlers.clear()
                logger.propagate = True

    class Studio(BaseApplication):
        def load_config(self):
            settings = {
                "logger_class": RootLogger,
                "bind": f"{config.host}:{config.port}",
                "workers": max(1, config.workers),
                "worker_class": "gthread",
                "threads": config.request_threads,
                "timeout": int(config.max_wait_s) + 60,
                "graceful_timeout": 10,
                "limit_request_line": 8190,
                "accesslog": None,
                "proc_name": "aiedit-api",
            }
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24
                settings["control_socket_disable"] = True
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            from aiedit.app import create_app

            return create_app(config)

    log.info("aiedit %s (studio) serving on http://%s:%s with %d API processes",
             __version__, config.host, config.port, config.workers)
    Studio().run()


@main.group()
def models():
    """List, download, verify and remove models."""


@models.command("list")
@click.option("--catalog-file", default=None, help="Extra catalog file (TOML)")
def models_list(catalog_file):
    """Show every model, whether it is installed, and its licence."""
    from aiedit.engines import is_installed
    from aiedit.engines.catalog import Catalog

    catalog = Catalog.load(catalog_file or Config.load().catalog_file or None)
    for entry in catalog:
        mark = "installed" if is_installed(entry) else "-"
        flag = " (non-commercial)" if entry.non_commercial else ""
        click.echo(f"{entry.id:32} {mark:9} {','.join(entry.operations):18} {entry.licence}{flag}")


EDITOR_NAMES = {"gimp": "GIMP", "krita": "Krita"}


def _catalog_entry(model_id: str, catalog_file):
    from aiedit.engines.catalog import Catalog

    catalog = Catalog.load(catalog_file or Config.load().catalog_file or None)
    entry = catalog.get(model_id)
    if entry is None:
        known = ", ".join(e.id for e in catalog)
        raise click.ClickException(f"unknown model {model_id!r}; known models: {known}")
    return catalog, entry


def _catalog_option(f):
    return click.option("--catalog-file", default=None, help="Extra catalog file (TOML)")(f)


@models.command("pull")
@click.argument("model_ids", nargs=-1, required=True)
@_catalog_option
def models_pull(model_ids, catalog_file):
    """Download models (into the Hugging Face cache), showing progress."""
    from tqdm import tqdm

    from aiedit.engines import engine_module, is_installed, unavailable_reason

    for model_id in model_ids:
        _, entry = _catalog_entry(model_id, catalog_file)
        engine = engine_module(entry.engine)
        if not hasattr(engine, "download"):
            click.echo(f"{entry.id}: nothing to download ({entry.engine} model)")
            continue
        if unavailable_reason(entry):
            raise click.ClickException(unavailable_reason(entry))
        if entry.licence_notice:
            click.echo(f"{entry.id}: {entry.licence_notice}", err=True)
        if is_installed(entry):
            click.echo(f"{entry.id}: already downloaded")
            continue
        with tqdm(total=entry.download_size or None, unit="B", unit_scale=True,
                  desc=entry.id) as bar:
            def report(done, total, bar=bar):
                bar.total = total or bar.total
                bar.update(done - bar.n)

            try:
                engine.download(entry, report)
            except Exception as exc:
                raise click.ClickException(f"{entry.id}: download failed: {exc}") from None
        click.echo(f"{entry.id}: downloaded")


@models.command("verify")
@click.argument("model_ids", nargs=-1)
@click.option("--hashes", is_flag=True,
              help="Also compare sha256 checksums with the hub (needs the network; slow)")
@_catalog_option
def models_verify(model_ids, hashes, catalog_file):
    """Check downloaded models' files (all installed ones when no id is given)."""
    from aiedit.engines import engine_module, is_installed
    from aiedit.engines.catalog import Catalog

    if model_ids:
        entries = [_catalog_entry(m, catalog_file)[1] for m in model_ids]
    else:
        catalog = Catalog.load(catalog_file or Config.load().catalog_file or None)
        entries = [e for e in catalog if is_installed(e)]
    failed = 0
    for entry in entries:
        verify = getattr(engine_module(entry.engine), "verify", None)
        if verify is not None:
            problems = verify(entry, online_hashes=hashes)
        else:
            problems = [] if is_installed(entry) else ["not installed"]
        if problems:
            failed += 1
            click.echo(f"{entry.id}: {len(problems)} problem(s)")
            for problem in problems:
                click.echo(f"  {problem}")
        else:
            click.echo(f"{entry.id}: ok")
    if failed:
        raise click.ClickException(f"{failed} model(s) failed verification; "
                                   "`aiedit models remove ID` then `aiedit models pull ID` "
                                   "fetches a clean copy")


@models.command("remove")
@click.argument("model_ids", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation")
@_catalog_option
def models_remove(model_ids, yes, catalog_file):
    """Delete downloaded models' files."""
    from aiedit.engines import engine_module, is_installed

    for model_id in model_ids:
        catalog, entry = _catalog_entry(model_id, catalog_file)
        engine = engine_module(entry.engine)
        if not hasattr(engine, "remove"):
            click.echo(f"{entry.id}: nothing to remove ({entry.engine} model)")
            continue
        if not is_installed(entry):
            click.echo(f"{entry.id}: not downloaded")
            continue
        sharing = [e.id for e in catalog if e.id != entry.id and e.source.get("repo")
                   and e.source.get("repo") == entry.source.get("repo")]
        if sharing:
            click.echo(f"{entry.id}: its files are shared with {', '.join(sharing)}, which will "
                       "need downloading again", err=True)
        if not yes:
            click.confirm(f"remove {entry.id} ({entry.download_size / 1e9:.1f} GB)?", abort=True)
        freed = engine.remove(entry)
        click.echo(f"{entry.id}: removed ({freed / 1e9:.2f} GB freed)")


@main.group()
def plugins():
    """Install the editor plugins."""


@plugins.command("install")
@click.argument("host", type=click.Choice(["gimp", "krita"]))
@click.option(
    "--dest",
    type=click.Path(file_okay=False),
    default=None,
    help="Install into this folder instead of the editor's user folder",
)
def plugins_install(host, dest):
    """Install the GIMP or Krita plugin for the current user."""
    from aiedit import plugins_install as installer

    install = getattr(installer, f"install_{host}")
    try:
        path = install(dest=dest)
    except installer.InstallRefused as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"installed the {host} plugin in {path}; restart {EDITOR_NAMES[host]}")


@plugins.command("zip")
@click.argument("host", type=click.Choice(["gimp", "krita"]))
@click.option("--out", type=click.Path(file_okay=False), default="dist", show_default=True,
              help="Folder for the zip")
def plugins_zip(host, out):
    """Build the plugin as a zip (Krita: Tools > Scripts > Import Python Plugin from File)."""
    from pathlib import Path

    from aiedit import plugins_install as installer

    click.echo(installer.build_zip(host, Path(out)))


@main.command()
def doctor():
    """Check the installation: Python packages, devices, data directory, models."""
    import importlib

    config = Config.load()
    click.echo(f"aiedit {__version__}, Python {sys.version.split()[0]}")
    click.echo(f"data dir: {config.data_dir}")
    for name in ("torch", "diffusers", "transformers", "spandrel", "cv2"):
        try:
            module = importlib.import_module(name)
            click.echo(f"  {name:12} {getattr(module, '__version__', '?')}")
        except ImportError as exc:
            click.echo(f"  {name:12} missing ({exc}); install with `pip install 'aiedit[ml]'`")
    from aiedit.engines import threads

    click.echo("threads (settings torch_threads, opencv_threads, threads override them):")
    for line in threads.plan(config).describe():
        click.echo(f"  {line}")


if __name__ == "__main__":
    main()
