"""A person's data: the export holds all of it (and nobody else's); erasure leaves no trace of
them in any table or column of the database (SQLite and PostgreSQL) nor in any file of the data
folder, keeps the credit ledger's amounts anonymous, and leaves other people's data alone."""

from __future__ import annotations

import io
import json
import subprocess
import uuid
import zipfile
from datetime import timedelta

import numpy as np
import pytest

from aiedit.accounts import people, sessions, support
from aiedit.auth import blocklist
from aiedit.auth.keys import Principal, create_key
from aiedit.auth.sessions import open_session
from aiedit.billing import ledger
from aiedit.privacy import UnknownUser
from aiedit.privacy.erase import erase_user
from aiedit.privacy.export import stream_export
from aiedit.store.models import LedgerEntry
from tests.helpers import (
    AIEDIT_BIN,
    box_mask,
    decode_png,
    noise_image,
    png_bytes,
    submit,
    wait_finished,
)
from tests.privacy.conftest import user_with_key
from tests.privacy.scan import files_containing, rows_containing


class Person:
    """A signed-up person with a key, credits, two finished jobs, a support message, a refused
    prompt, an account-page session and an admin-page session: traces everywhere."""

    def __init__(self, app, services, tag: str, admin: bool = False):
        db = services.db
        client = app.test_client()
        self.email = f"{tag}-{uuid.uuid4().hex[:8]}@example.org"
        self.display_name = f"Name {tag} {uuid.uuid4().hex[:8]}"
        person = people.sign_up(db, self.email, self.display_name, "a long passphrase 123",
                                True, 13)
        self.user = person.id
        if admin:
            with db.session() as s:
                from aiedit.store.models import User
                s.get(User, self.user).role = "admin"
        row, self.key = create_key(db, f"{tag}-laptop", user=self.user)
        self.key_id = row.id
        self.headers = {"Authorization": f"Bearer {self.key}"}
        account = ledger.ensure_account(db, self.user)
        self.account_id = account.id
        ledger.grant(db, account.id, 100, f"welcome {tag}")
        self.payment_ref = f"cs_test_{uuid.uuid4().hex}"
        with db.session() as s:
            ledger.credit(s, account.id, 50, ledger.PURCHASE, reason=f"pack for {tag}",
                          ref=self.payment_ref,
                          meta={"session": f"cs_{self.payment_ref}", "amount": 1299,
                                "currency": "eur", "client_reference_id": account.id})
        self.prompts = [f"prompt-{tag}-{uuid.uuid4().hex}", f"prompt-{tag}-{uuid.uuid4().hex}"]
        self.upload = png_bytes(noise_image(40, 32, seed=len(tag)))
        mask = box_mask(40, 32, (4 + len(tag), 8, 24, 24))  # unlike anyone else's
        self.raw_mask = mask.tobytes()
        first = submit(client, "inpaint", {"image": self.upload, "mask": png_bytes(mask)},
                       headers=self.headers, model="classic-telea",
                       params={"prompt": self.prompts[0]})
        assert first.status_code == 202, first.get_json()
        second = client.post("/v1/jobs", headers=self.headers, content_type="multipart/form-data",
                             data={
            "request": json.dumps({"operation": "inpaint", "model": "classic-telea",
                                   "params": {"prompt": self.prompts[1]},
                                   "raw": {"mask": {"width": 40, "height": 32}}}),
            "image": (io.BytesIO(self.upload), "image.png"),
            "mask": (io.BytesIO(self.raw_mask), "mask.raw"),
        })
        assert second.status_code == 202, second.get_json()
        self.jobs = [wait_finished(client, r.get_json()["id"], headers=self.headers)
                     for r in (first, second)]
        assert all(j["state"] == "succeeded" for j in self.jobs), self.jobs
        self.result = client.get(f"/v1/jobs/{self.jobs[0]['id']}/results/0?format=rgba",
                                 headers=self.headers).data
        self.support_text = f"help me {tag} {uuid.uuid4().hex}"
        support.send(db, self.user, self.support_text, self.jobs[0]["id"])
        refused = submit(client, "inpaint", {"image": self.upload, "mask": png_bytes(mask)},
                         headers=self.headers, model="classic-telea",
                         params={"prompt": "a blocked-word here"})
        assert refused.status_code == 422
        sessions.open_session(db, self.user, timedelta(hours=1))
        if admin:
            principal = Principal(owner=self.user, role="admin", user=self.user)
            open_session(db, self.key_id, principal, timedelta(hours=1))

    def texts(self) -> list[str]:
        return [self.user, self.email, self.display_name, self.key_id, self.account_id,
                self.payment_ref, self.support_text, *self.prompts, f"welcome {self.user}"]

    def bytes_(self) -> list[bytes]:
        return [t.encode() for t in self.texts()] + [
            self.upload[len(self.upload) // 2:][:64], self.raw_mask[400:720],
            self.result[2000:2064],
        ]


@pytest.fixture
def people_app(papp, services):
    blocklist.add_term(services.db, "blocked word")
    return papp


def test_the_export_holds_the_persons_data_and_nobody_elses(people_app, services):
    alice = Person(people_app, services, "alice")
    bob = Person(people_app, services, "bob")
    client = people_app.test_client()
    resp = client.get("/v1/account/export", headers=alice.headers)
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    assert "attachment" in resp.headers["Content-Disposition"]
    zf = zipfile.ZipFile(io.BytesIO(resp.data))
    account = json.loads(zf.read("account.json"))
    assert account["user"]["email"] == alice.email
    assert account["user"]["display_name"] == alice.display_name
    assert account["credit_account"]["id"] == alice.account_id
    assert [k["id"] for k in account["api_keys"]] == [alice.key_id]
    assert account["support_messages"][0]["message"] == alice.support_text
    jobs = {j["id"]: j for j in json.loads(zf.read("jobs.json"))}
    assert set(jobs) == {j["id"] for j in alice.jobs}
    first, second = (jobs[j["id"]] for j in alice.jobs)
    assert first["params"]["prompt"] == alice.prompts[0] and first["state"] == "succeeded"
    assert first["finished_at"] and first["expires_at"] and first["created_at"]
    assert zf.read(first["inputs"]["image"]) == alice.upload, "uploads as they were sent"
    result = decode_png(zf.read(first["results"][0]["file"]))
    assert result.tobytes() == alice.result
    raw_mask = np.asarray(__import__("PIL.Image").Image.open(
        io.BytesIO(zf.read(second["inputs"]["mask"]))))
    assert raw_mask.tobytes() == alice.raw_mask, "a raw upload comes back as a PNG"
    ledger_rows = json.loads(zf.read("ledger.json"))
    assert [(r["kind"], r["amount"]) for r in ledger_rows] == [("grant", 100), ("purchase", 50)]

    assert zf.testzip() is None

    pieces = list(stream_export(services, alice.user))  # what the endpoint streams
    assert len(pieces) == len(alice.jobs) + 1, "one job's files at a time"
    assert zipfile.ZipFile(io.BytesIO(b"".join(pieces))).namelist() == zf.namelist()

    everything = b"".join(zf.read(name) for name in zf.namelist())
    assert alice.key.split("_", 2)[2].encode() not in everything, "no key secret"
    for trace in bob.bytes_():
        assert trace not in everything, "nothing of another person"


def test_a_key_without_a_user_has_no_export(people_app, services):
    _, key = create_key(services.db, "ci-bot")
    resp = people_app.test_client().get("/v1/account/export",
                                        headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 404 and resp.get_json()["code"] == "no_account"


def test_erasure_leaves_no_trace_in_the_database_or_the_data_folder(people_app, services):
    alice = Person(people_app, services, "alice", admin=True)
    bob = Person(people_app, services, "bob")
    db_url, data_dir = services.config.database, services.config.data_dir
    assert rows_containing(db_url, alice.texts()), "the probe finds her before"
    assert len({n for _, n in files_containing(data_dir, alice.bytes_())}) >= 3
    with services.db.session() as s:
        rows_before = s.query(LedgerEntry).count()

    erased = erase_user(services, alice.user)
    assert (erased.jobs, erased.keys, erased.ledger_rows_anonymised) == (2, 1, 2)

    assert rows_containing(db_url, alice.texts()) == []
    assert files_containing(data_dir, alice.bytes_()) == []
    with services.db.session() as s:
        kept = s.query(LedgerEntry).filter(LedgerEntry.account_id.is_(None)).all()
        assert s.query(LedgerEntry).count() == rows_before
    assert sorted((r.kind, r.amount) for r in kept) == [("grant", 100), ("purchase", 50)]
    assert all(r.ref is None and r.reason == "" and r.job_id is None for r in kept)
    assert sorted(str(r.meta) for r in kept) == ["None", "{'amount': 1299, 'currency': 'eur'}"]

    client = people_app.test_client()
    assert client.get("/v1/jobs", headers=alice.headers).status_code == 401
    assert client.get(f"/v1/jobs/{bob.jobs[0]['id']}/results/0",
                      headers=bob.headers).status_code == 200, "bob keeps his"
    assert rows_containing(db_url, [bob.email, bob.prompts[0], bob.support_text])
    with pytest.raises(UnknownUser):
        erase_user(services, alice.user)


def test_erasure_stops_an_unfinished_job_and_returns_nothing(papp, services):
    """A queued job (the server's workers are running; the test stops them first)."""
    services.queue.stop()
    headers, _ = user_with_key(services, "carol")
    client = papp.test_client()
    job = submit(client, "upscale", {"image": png_bytes(noise_image(16, 16))}, headers=headers,
                 model="classic-lanczos").get_json()
    assert job["state"] == "queued"
    erase_user(services, "carol", stop_wait_s=1.0)
    assert not services.blobs.job_dir(job["id"]).exists()
    assert rows_containing(services.config.database, ["carol", job["id"]]) == []


def test_admins_erase_a_user_from_the_command_line(tmp_path):
    data = tmp_path / "cli"

    def aiedit(*args, stdin=None):
        return subprocess.run([str(AIEDIT_BIN), *args, "--data-dir", str(data)],
                              capture_output=True, text=True, timeout=120, input=stdin)

    assert aiedit("users", "create", "dora").returncode == 0
    key = aiedit("keys", "create", "--name", "dora-key", "--user", "dora").stdout.strip()
    assert key.startswith("aiedit_")
    declined = aiedit("users", "erase", "dora", stdin="n\n")
    assert declined.returncode == 1 and "dora" in aiedit("users", "list").stdout
    done = aiedit("users", "erase", "dora", "--yes")
    assert done.returncode == 0, done.stderr
    assert "erased dora: 0 job(s), 1 key(s)" in done.stdout
    assert "dora" not in aiedit("users", "list").stdout
    assert "dora" not in aiedit("keys", "list").stdout
    missing = aiedit("users", "erase", "dora", "--yes")
    assert missing.returncode == 1 and "no user 'dora'" in missing.stderr
    assert rows_containing(f"sqlite:///{data / 'aiedit.sqlite3'}", ["dora"]) == []
    assert files_containing(data, [b"dora"]) == []
