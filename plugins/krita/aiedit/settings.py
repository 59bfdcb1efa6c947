"""The plugin's settings, kept in Krita's own configuration (kritarc, group ``aiedit``)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from .aiedit_client import DEFAULT_URL

GROUP = "aiedit"


@dataclass
class Settings:
    """What the docker remembers between sessions. The API key is stored in kritarc as plain
    text, like Krita's other settings."""

    server_url: str = DEFAULT_URL
    api_key: str = ""
    operation: str = "inpaint"
    model: str = ""
    source: str = "image"
    live_interval_ms: str = "700"  # live mode: at most one frame this often


def load() -> Settings:
    app = _app()
    if app is None:
        return Settings()
    values = {}
    for f in fields(Settings):
        values[f.name] = app.readSetting(GROUP, f.name, str(f.default)) or f.default
    return Settings(**values)


def save(settings: Settings) -> None:
    app = _app()
    if app is None:
        return
    for f in fields(Settings):
        app.writeSetting(GROUP, f.name, str(getattr(settings, f.name)))


def _app():
    try:
        from krita import Krita
    except ImportError:
        return None
    return Krita.instance()
