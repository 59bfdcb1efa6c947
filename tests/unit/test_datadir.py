"""The data directory is private (folder 0700, database 0600, job files unreadable by others) and
held by one server at a time."""

import stat

import numpy as np
import pytest

from aiedit.config import Config
from aiedit.services import Services
from aiedit.store.datadir import DataDirBusy, DataDirLock


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def services(tmp_path):
    services = Services.build(Config(data_dir=tmp_path / "new" / "data", testing=True))
    yield services
    services.stop()


def test_a_new_data_directory_and_its_database_are_private(services):
    data_dir = services.config.data_dir
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "aiedit.sqlite3") == 0o600
    for companion in ("aiedit.sqlite3-wal", "aiedit.sqlite3-shm"):
        if (data_dir / companion).exists():
            assert mode(data_dir / companion) == 0o600, companion
    assert mode(services.config.blob_dir) == 0o700
    services.blobs.put_array("job1", "image", np.zeros((2, 2, 4), np.uint8))
    stored = services.config.blob_dir / "job1" / "image.npy"
    assert mode(stored) & 0o077 == 0, oct(mode(stored))


def test_an_existing_aiedit_data_directory_is_tightened(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    (data_dir / "aiedit.sqlite3").touch(mode=0o644)
    data_dir.chmod(0o755)
    services = Services.build(Config(data_dir=data_dir, testing=True))
    services.stop()
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "aiedit.sqlite3") == 0o600


def test_a_folder_holding_other_things_keeps_its_mode(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes.txt").write_text("mine")
    shared.chmod(0o755)
    services = Services.build(Config(data_dir=shared, testing=True))
    services.stop()
    assert mode(shared) == 0o755
    assert mode(shared / "aiedit.sqlite3") == 0o600


def test_the_data_directory_lock_is_exclusive_and_released(tmp_path):
    first = DataDirLock(tmp_path).acquire()
    with pytest.raises(DataDirBusy, match="another aiedit server") as busy:
        DataDirLock(tmp_path).acquire()
    assert str(tmp_path) in str(busy.value)
    first.release()
    DataDirLock(tmp_path).acquire().release()
