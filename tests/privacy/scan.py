"""Search stored data for traces of a person: every file under a folder, byte for byte, and
every text, JSON and binary column of every table of a database."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import create_engine, inspect, select, text


def files_containing(root: Path, needles: list[bytes]) -> list[tuple[str, bytes]]:
    """(file, needle) for each needle found in a file under `root` (all files, hidden too)."""
    found = []
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [(str(path.relative_to(root)), n) for n in needles if n in data]
    return found


def rows_containing(url: str, needles: list[str]) -> list[tuple[str, str, str]]:
    """(table, column, needle) for each needle found in any column of any table, every value
    read as text (JSON and binary ones too), so nothing hides in a structure or a type."""
    engine = create_engine(url)
    found = []
    try:
        inspector = inspect(engine)
        with engine.connect() as connection:
            for table in inspector.get_table_names():
                for column in inspector.get_columns(table):
                    query = select(text(f'"{column["name"]}"')).select_from(text(f'"{table}"'))
                    for value in connection.execute(query).scalars():
                        if value is None:
                            continue
                        if isinstance(value, (bytes, memoryview)):
                            as_text = bytes(value).decode("latin-1")
                        else:
                            as_text = json.dumps(value, default=str, ensure_ascii=False) \
                                if isinstance(value, (dict, list)) else str(value)
                        found += [(table, column["name"], n) for n in needles if n in as_text]
    finally:
        engine.dispose()
    return found
