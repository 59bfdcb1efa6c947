"""API keys: once a key exists requests need one, and jobs belong to the key that made them."""

from aiedit.app import services_of
from aiedit.auth.keys import create_key
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
    from aiedit.auth.keys import revoke_key

    db = services_of(app).db
    row, key = create_key(db, "dave")
    _, other = create_key(db, "erin")
    assert client.get("/v1/models", headers=bearer(key)).status_code == 200
    revoke_key(db, row.id)
    assert client.get("/v1/models", headers=bearer(key)).status_code == 401
