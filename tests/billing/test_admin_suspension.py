"""The admin page of a hosted server: each user's credits, and a Suspend button that cancels
the account's queued jobs (credits back) and makes its keys answer 403."""

from __future__ import annotations

from tests.web.test_admin import form_token


def sign_in(client, headers):
    key = headers["Authorization"].split(" ", 1)[1]
    token = form_token(client.get("/admin"))
    resp = client.post("/admin/login", data={"key": key, "csrf_token": token})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]


def test_the_admin_page_suspends_and_unsuspends_an_account(hosted_factory):
    hosted = hosted_factory(start=False)  # no worker: jobs stay queued
    admin = hosted.user("root", role="admin")
    member = hosted.user("mia", credits=7)
    job_id = hosted.submit(member, scale=2).get_json()["id"]
    assert hosted.balance("mia") == 6
    client = hosted.app.test_client()
    sign_in(client, admin)
    page = client.get("/admin").get_data(as_text=True)
    assert 'aria-label="Suspend mia"' in page
    row = page[page.index('data-owner="mia"'):]
    assert '<td class="num">6' in row[:row.index("</tr>")]

    refused = client.post("/admin/users/mia/suspend", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert hosted.client.get("/v1/account", headers=member).status_code == 200

    done = client.post("/admin/users/mia/suspend", data={"csrf_token": form_token(
        client.get("/admin"))})
    assert done.status_code == 303 and "notice=suspended" in done.headers["Location"]
    resp = hosted.client.get("/v1/account", headers=member)
    assert resp.status_code == 403 and resp.get_json()["code"] == "account_suspended"
    assert hosted.client.get(f"/v1/jobs/{job_id}", headers=admin).get_json()["state"] == (
        "canceled"
    )
    assert hosted.balance("mia") == 7
    page = client.get("/admin").get_data(as_text=True)
    assert 'aria-label="Lift the suspension of mia"' in page

    client.post("/admin/users/mia/unsuspend", data={"csrf_token": form_token(
        client.get("/admin"))})
    assert hosted.client.get("/v1/account", headers=member).status_code == 200
