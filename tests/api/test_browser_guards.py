"""Web pages cannot drive the key-less loopback server: foreign Host names (DNS rebinding) and
foreign Origins are refused before anything runs; a wildcard CORS origin there is refused at start.
"""

import pytest

from aiedit.app import services_of
from aiedit.auth.keys import create_key
from tests.helpers import noise_image, png_bytes, submit

IMAGE = png_bytes(noise_image(16, 16))


def jobs_of(app) -> int:
    from aiedit.store.models import Job

    with services_of(app).db.session() as s:
        return s.query(Job).count()


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:8790", "127.0.0.1", "127.0.0.1:8790", "127.8.9.10:1", "[::1]:8790",
     "[::1]", "LOCALHOST:8790"],
)
def test_loopback_host_names_are_answered(make_app, host):
    client = make_app().test_client()
    assert client.get("/v1/jobs", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8790", "127.0.0.1.evil.example", "localhost.evil:1",
             "10.0.0.5:8790", "[::2]:8790"]
)
def test_foreign_host_names_are_refused_on_a_keyless_server(make_app, host):
    app = make_app()
    client = app.test_client()
    listing = client.get("/v1/jobs", headers={"Host": host})
    assert listing.status_code == 403
    body = listing.get_json()
    assert body["code"] == "host_not_allowed" and "AIEDIT_ALLOWED_HOSTS" in body["message"]
    posted = submit(client, "upscale", {"image": IMAGE}, headers={"Host": host})
    assert posted.status_code == 403
    assert jobs_of(app) == 0


def test_allowed_hosts_and_the_configured_host_are_answered(make_app):
    client = make_app(host="127.0.0.2", allowed_hosts=["studio.lan", "box:9000"]).test_client()
    for host in ("studio.lan", "studio.lan:8790", "box", "127.0.0.2:8790"):
        assert client.get("/v1/jobs", headers={"Host": host}).status_code == 200, host
    assert client.get("/v1/jobs", headers={"Host": "other.lan"}).status_code == 403


def test_host_names_are_not_checked_once_keys_protect_the_server(make_app):
    app = make_app()
    _, key = create_key(services_of(app).db, "alice")
    headers = {"Host": "gpu-box.studio.lan:8790", "Authorization": f"Bearer {key}"}
    assert app.test_client().get("/v1/jobs", headers=headers).status_code == 200


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:9999"])
def test_foreign_origins_cannot_submit_or_read(make_app, origin):
    app = make_app()
    client = app.test_client()
    mine = submit(client, "upscale", {"image": IMAGE}).get_json()
    headers = {"Origin": origin}
    posted = submit(client, "upscale", {"image": IMAGE}, headers=headers)
    assert posted.status_code == 403
    assert posted.get_json()["code"] == "origin_not_allowed"
    assert "AIEDIT_CORS_ORIGINS" in posted.get_json()["message"]
    assert jobs_of(app) == 1
    for url in ("/v1/jobs", f"/v1/jobs/{mine['id']}", f"/v1/jobs/{mine['id']}/results/0"):
        resp = client.get(url, headers=headers)
        assert resp.status_code == 403, url
        assert "Access-Control-Allow-Origin" not in resp.headers
    assert client.delete(f"/v1/jobs/{mine['id']}", headers=headers).status_code == 403
    preflight = client.options(
        "/v1/jobs", headers=headers | {"Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 403


def test_a_null_origin_is_answered_only_when_the_browser_says_same_origin(make_app):
    client = make_app().test_client()
    own_form = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}  # the admin page's posts
    assert client.get("/v1/jobs", headers=own_form).status_code == 200
    for site in ("cross-site", "same-site", "none"):
        resp = client.get("/v1/jobs", headers={"Origin": "null", "Sec-Fetch-Site": site})
        assert resp.status_code == 403, site


def test_a_cross_site_request_without_origin_is_refused(make_app):
    client = make_app().test_client()
    resp = client.get("/v1/jobs", headers={"Sec-Fetch-Site": "cross-site"})
    assert resp.status_code == 403 and resp.get_json()["code"] == "origin_not_allowed"
    for site in ("same-origin", "none"):
        assert client.get("/v1/jobs", headers={"Sec-Fetch-Site": site}).status_code == 200


def test_same_origin_and_listed_origins_are_answered(make_app):
    client = make_app(cors_origins=["https://panel.example"]).test_client()
    own = {"Host": "127.0.0.1:8790", "Origin": "http://127.0.0.1:8790"}  # the /docs page
    assert client.get("/v1/jobs", headers=own).status_code == 200
    listed = client.get("/v1/jobs", headers={"Origin": "https://panel.example"})
    assert listed.status_code == 200
    assert listed.headers["Access-Control-Allow-Origin"] == "https://panel.example"
    assert client.get("/v1/jobs").status_code == 200, "the plugins send no Origin"


@pytest.mark.parametrize("wildcard", ["*", "null"])
def test_a_wildcard_cors_origin_is_refused_at_start_on_a_keyless_server(make_app, wildcard):
    with pytest.raises(ValueError, match="needs no API key") as refused:
        make_app(cors_origins=[wildcard])
    assert "aiedit keys create" in str(refused.value)


def test_a_wildcard_cors_origin_is_allowed_once_keys_are_needed(make_app, tmp_path):
    app = make_app(host="0.0.0.0", cors_origins=["*"])
    _, key = create_key(services_of(app).db, "alice")
    resp = app.test_client().get(
        "/v1/jobs", headers={"Origin": "https://anywhere.example", "Authorization": f"Bearer {key}"}
    )
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
