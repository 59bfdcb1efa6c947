"""API keys: once a key exists requests need one, and jobs belong to the key that made them."""


from aiedit.app import services_of
from aiedit.auth.keys import create_key, revoke_key
from tests.helpers import noise_image, png_bytes, submit

IMAGE = png_bytes(noise_image(16, 16))


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_keys_required_once_one_exists(app, client):
    db = services_of(app).db
    _, alice = create_key(db, "alice")
    _, bob = create_key(db, "bob")

    assert client.get("/v1/health").status_code == 200
    resp = client.get("/v1/operations")
    assert resp.status_code == 401
    assert "aiedit keys create" in resp.get_json()["message"]
    assert client.get("/v1/operations", headers=bearer(alice[:-2] + "xx")).status_code == 401
    assert client.get("/v1/operations", headers=bearer("garbage")).status_code == 401

    job = submit(client, "upscale", {"image": IMAGE}, headers=bearer(alice)).get_json()
    assert client.get(f"/v1/jobs/{job['id']}", headers=bearer(alice)).status_code == 200
    for method in (client.get, client.delete):
        resp = method(f"/v1/jobs/{job['id']}", headers=bearer(bob))
        assert resp.status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}/results/0", headers=bearer(bob)).status_code == 404
    assert client.get("/v1/jobs", headers=bearer(bob)).get_json() == []
    assert len(client.get("/v1/jobs", headers=bearer(alice)).get_json()) == 1


def test_keys_are_stored_hashed(app):
    db = services_of(app).db
    row, key = create_key(db, "carol")
    secret = key.split("_", 2)[2]
    assert secret not in row.secret_hash
    assert len(row.secret_hash) == 64


def test_revoked_key_is_rejected(app, client):
    db = services_of(app).db
    row, key = create_key(db, "dave")
    _, other = create_key(db, "erin")
    assert client.get("/v1/models", headers=bearer(key)).status_code == 200
    revoke_key(services_of(app).runner, row.id)
    assert client.get("/v1/models", headers=bearer(key)).status_code == 401


# --- whether keys are needed: the bind address and whether a key was ever created -------------


def assert_needs_a_key(resp):
    assert resp.status_code == 401, resp.get_json()
    body = resp.get_json()
    assert body["code"] == "unauthorized"
    assert "aiedit keys create --name NAME" in body["message"], body["message"]
    assert "no active" in body["message"], body["message"]


def test_revoking_the_last_key_does_not_open_a_server_bound_beyond_loopback(make_app):
    """The review's reproduction: keys create, serve 0.0.0.0, revoke, anonymous request."""
    app = make_app(host="0.0.0.0")
    services = services_of(app)
    client = app.test_client()
    row, key = create_key(services.db, "a")
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200
    assert revoke_key(services.runner, row.id)

    assert_needs_a_key(client.get("/v1/jobs"))
    assert_needs_a_key(submit(client, "upscale", {"image": IMAGE}))
    rejected = client.get("/v1/jobs", headers=bearer(key))
    assert rejected.status_code == 401
    assert "aiedit keys create" in rejected.get_json()["message"]
    assert client.get("/v1/health").get_json()["auth_required"] is True
    _, fresh = create_key(services.db, "b")
    assert client.get("/v1/jobs", headers=bearer(fresh)).status_code == 200


def test_a_server_beyond_loopback_needs_a_key_even_if_none_was_ever_created(make_app):
    app = make_app(host="0.0.0.0")
    assert_needs_a_key(app.test_client().get("/v1/operations"))


def test_a_loopback_server_that_ever_had_a_key_stays_closed_after_revokes(make_app):
    app = make_app()
    services = services_of(app)
    client = app.test_client()
    assert client.get("/v1/jobs").status_code == 200, "key-less loopback: open"
    assert client.get("/v1/health").get_json()["auth_required"] is False
    row, _ = create_key(services.db, "a")  # created while the server runs (as from the CLI)
    assert client.get("/v1/jobs").status_code == 401
    revoke_key(services.runner, row.id)
    assert_needs_a_key(client.get("/v1/jobs"))
    assert client.get("/v1/health").get_json()["auth_required"] is True


def test_a_keyless_loopback_server_stays_keyless(make_app):
    client = make_app().test_client()
    for _ in range(3):
        assert client.get("/v1/jobs").status_code == 200
    job = submit(client, "upscale", {"image": IMAGE})
    assert job.status_code == 202, job.get_json()
