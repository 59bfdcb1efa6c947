"""The studio schema on PostgreSQL and SQLite alike, and the fair order on its own."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import bindparam, func, inspect, select

from aiedit.auth.keys import authenticate, create_key
from aiedit.auth.users import UserError, create_user
from aiedit.jobs.fair import fair_order, for_device
from aiedit.store.db import Database
from aiedit.store.models import Base, User


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    else:
        postgres = request.getfixturevalue("postgres")
        db = Database(postgres.database())
    yield db
    db.dispose()


def test_the_same_migrations_build_the_models_schema_on_both_databases(database):
    assert database.revisions()[0] is None
    with pytest.raises(RuntimeError, match="aiedit db upgrade"):
        database.check_current()
    database.migrate()
    database.check_current()
    with database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    cfg = AlembicConfig()
    cfg.set_main_option(
        "script_location", str(resources.files("aiedit.store").joinpath("migrations"))
    )
    with database.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0004_job_stats")
    assert "users" not in inspect(database.engine).get_table_names()
    database.migrate()
    assert {"users", "workers"} <= set(inspect(database.engine).get_table_names())


def test_a_users_keys_act_as_the_user_with_the_users_role(database):
    database.migrate()
    create_user(database, "alice", "admin")
    create_user(database, "bob")
    with pytest.raises(UserError, match="already exists"):
        create_user(database, "bob")
    for bad in ("local", "0123456789ab", "1abc", "a b"):
        with pytest.raises(UserError, match="invalid user name"):
            create_user(database, bad)
    _, alice_key = create_key(database, "alice-krita", user="alice")
    _, bob_key = create_key(database, "bob-gimp", role="admin", user="bob")
    with pytest.raises(ValueError, match="no user 'carol'"):
        create_key(database, "x", user="carol")
    alice, bob = authenticate(database, alice_key), authenticate(database, bob_key)
    assert (alice.owner, alice.is_admin) == ("alice", True)
    assert (bob.owner, bob.is_admin) == ("bob", False), "a member's key is never an admin key"
    _, loose = create_key(database, "script")
    principal = authenticate(database, loose)
    assert principal.user is None and len(principal.owner) == 12


def _queued(*owners, start=datetime(2026, 1, 1, tzinfo=UTC)):
    return [(f"{owner}{i}", owner, start + timedelta(seconds=i), "m")
            for i, owner in enumerate(owners)]


def test_a_read_serialized_on_a_name_sees_what_the_lock_holder_before_it_committed(database):
    """`serialize(..., then=read)`: the read runs once the locks are held, so it counts the row
    a transaction holding the lock inserted while this one waited (on PostgreSQL the locks
    and the read go in one round trip, each statement with a snapshot of its own)."""
    database.migrate()
    count = (select(func.count()).select_from(User)
             .where(User.name != bindparam("but", type_=User.name.type)))
    holder = database.session()
    first = holder.__enter__()
    assert tuple(database.serialize(first, "owner:x", then=count, params={"but": "-"})) == (0,)
    create = threading.Event()
    answer = []

    def waiter():
        with database.session() as second:
            create.set()
            answer.append(tuple(database.serialize(second, "queue", "owner:x", then=count,
                                                   params={"but": "o'neil"})))

    thread = threading.Thread(target=waiter)
    thread.start()
    create.wait(5)
    time.sleep(0.3)  # the waiter is blocked on the lock by now
    assert not answer, "the second transaction waits for the first"
    first.add(User(name="o'neil", role="member", created_at=datetime.now(UTC)))
    first.add(User(name="ada", role="member", created_at=datetime.now(UTC)))
    holder.__exit__(None, None, None)  # commit: the waiter goes on
    thread.join(10)
    assert answer == [(1,)], "both rows seen, the quoted name bound as a value"


def test_fair_order_takes_turns_least_recently_served_first():
    queued = _queued(*["a"] * 20, "b", "c")
    order = fair_order(queued, {"a": None, "b": None, "c": None})
    assert order[:4] == ["a0", "b20", "c21", "a1"]
    assert order[3:] == [f"a{i}" for i in range(1, 20)]
    served = {"a": datetime(2026, 1, 2, tzinfo=UTC), "b": datetime(2026, 1, 1, tzinfo=UTC),
              "c": None}
    assert fair_order(queued, served)[:4] == ["c21", "b20", "a0", "a1"]


def test_a_cpu_worker_leaves_model_jobs_to_a_live_gpu_worker_and_takes_classic_ones():
    queued = [("d1", "a", None, "sdxl-turbo", None), ("c1", "a", None, "classic-telea", None),
              ("d2", "b", None, "flux-schnell", None), ("c2", "b", None, "classic-lanczos", None)]
    order = ["d1", "d2", "c1", "c2"]

    def classic(model):
        return model.startswith("classic-")

    assert for_device(order, queued, "cpu", lambda: ["cuda:0", "cpu"], classic) == ["c1", "c2"]
    assert for_device(order, queued, "cpu", lambda: ["cpu"], classic) == order  # no GPU: all
    assert for_device(order, queued, "cpu", lambda: [], classic) == order


def test_a_worker_asks_which_workers_are_alive_only_when_the_answer_matters():
    """Who else is alive is a database query on the path from ticket to start: a GPU worker,
    or a CPU worker with only classic jobs waiting, takes the fair order without it."""
    queued = [("d1", "a", None, "sdxl-turbo", None), ("c1", "b", None, "classic-telea", None)]
    asked = []

    def live():
        asked.append(1)
        return ["cuda:0"]

    def classic(model):
        return model.startswith("classic-")

    assert for_device(["d1", "c1"], queued, "cuda:0", live, classic) == ["d1", "c1"]
    assert for_device(["c1"], queued[1:], "cpu", live, classic) == ["c1"]
    assert asked == []
    assert for_device(["d1", "c1"], queued, "cpu", live, classic) == ["c1"]
    assert asked == [1]


def test_live_servers_use_the_database_the_db_option_names(request, tmp_path):
    from tests.helpers import LiveServer

    url = LiveServer(tmp_path / "data").env.get("AIEDIT_DATABASE_URL", "")
    if request.config.getoption("--db") == "postgresql":
        assert url.startswith("postgresql+psycopg://")
    else:
        assert url == ""
