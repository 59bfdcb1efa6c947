"""Command line: aiedit serve | keys | models | plugins | doctor."""

from __future__ import annotations

import logging
import signal
import sys

import click

from aiedit import __version__
from aiedit.config import DEFAULT_PORT, Config

log = logging.getLogger("aiedit")


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

    return Services.build(config)


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
def serve(host, port, data_dir):
    """Run the server (personal mode: one process, embedded queue)."""
    from waitress import create_server

    from aiedit.app import create_app
    from aiedit.auth.keys import keys_exist
    from aiedit.store import datadir

    config = _config(host=host, port=port, data_dir=data_dir)
    _configure_logging(config)
    datadir.prepare(config.data_dir, config.database, config.blob_dir)
    try:
        lock = datadir.DataDirLock(config.data_dir).acquire()  # held until this process ends
    except datadir.DataDirBusy as exc:
        raise click.ClickException(str(exc)) from None
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


def waitress_settings(config: Config) -> dict:
    """Big images move through memory buffers, not waitress' temporary files."""
    buffer = min(config.max_upload_bytes + (1 << 16), 256 << 20)
    return {
        "threads": config.threads,
        "channel_timeout": 120,
        "max_request_body_size": config.max_upload_bytes + (1 << 16),
        "inbuf_overflow": buffer,
        "outbuf_overflow": buffer,
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
@click.option("--role", type=click.Choice(["user", "admin"]), default="user")
@_data_dir_option
def keys_create(name, role, data_dir):
    """Create a key and print it (it is shown only once)."""
    from aiedit.auth.keys import create_key

    services = _services(_config(data_dir))
    row, key = create_key(services.db, name, role)
    click.echo(key)
    click.echo(
        f"created key {row.id} ({name}, {role}); store it now: it cannot be shown again", err=True
    )


@keys.command("list")
@_data_dir_option
def keys_list(data_dir):
    """List keys (never their secrets)."""
    from aiedit.auth.keys import list_keys

    for row in list_keys(_services(_config(data_dir)).db):
        state = "revoked" if row.revoked_at else "active"
        click.echo(f"{row.id}  {row.role:5}  {state:7}  {row.created_at:%Y-%m-%d}  {row.name}")


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

    from aiedit.engines import engine_module, is_installed

    for model_id in model_ids:
        _, entry = _catalog_entry(model_id, catalog_file)
        engine = engine_module(entry.engine)
        if not hasattr(engine, "download"):
            click.echo(f"{entry.id}: nothing to download ({entry.engine} model)")
            continue
        if entry.non_commercial:
            click.echo(f"{entry.id}: licence {entry.licence} (non-commercial use only)", err=True)
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


if __name__ == "__main__":
    main()
