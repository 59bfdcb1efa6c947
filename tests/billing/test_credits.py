"""Credits in hosted mode: the account, holds at submission, charge on success, release on
failure and cancel, the balance that never goes below zero, the daily ceiling, suspension."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from aiedit.billing import ledger
from aiedit.store.models import LedgerEntry
from tests.helpers import wait_finished


def test_account_shows_id_name_balance_plan_and_limits(hosted):
    headers = hosted.user("ada", credits=25)
    resp = hosted.client.get("/v1/account", headers=headers)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["id"] == hosted.account_id("ada") and len(body["id"]) == 32
    assert body["name"] == "ada"
    assert body["balance"] == 25 and body["held"] == 0
    assert body["plan"] is None and body["suspended"] is False
    assert body["limits"] == {"daily_credits": None, "spent_today": 0, "max_queued": None,
                              "daily_units": None}
    history = hosted.client.get("/v1/account/ledger", headers=headers).get_json()
    assert [(r["kind"], r["amount"], r["reason"]) for r in history] == [
        ("grant", 25, "test credits")
    ]


def test_a_successful_job_is_charged_its_price(hosted):
    headers = hosted.user("bea", credits=10)
    resp = hosted.submit(headers, scale=2)
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(hosted.client, resp.get_json()["id"], headers=headers)
    assert job["state"] == "succeeded"
    assert hosted.balance("bea") == 9  # classic upscale of 32x32 x2: 1 unit x rate 1
    kinds = [(r.kind, r.amount) for r in hosted.rows("bea")]
    assert kinds == [("charge", 0), ("hold", -1), ("grant", 10)]


def test_without_credits_a_job_is_refused_with_402_naming_balance_and_price(hosted):
    headers = hosted.user("cy", credits=0)
    resp = hosted.submit(headers, scale=2)
    assert resp.status_code == 402
    body = resp.get_json()
    assert body["code"] == "insufficient_credits"
    assert "costs 1 credits" in body["message"] and "balance is 0" in body["message"]
    with hosted.db.session() as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 0


def test_fifty_concurrent_submissions_with_credit_for_one_accept_exactly_one(hosted):
    headers = hosted.user("dee", credits=1)
    barrier = threading.Barrier(50)
    statuses: list[int] = []
    lock = threading.Lock()

    def post():
        client = hosted.app.test_client()
        barrier.wait()
        resp = hosted.submit(headers, scale=2, client=client)
        with lock:
            statuses.append(resp.status_code)
            if resp.status_code != 202:
                assert resp.get_json()["code"] == "insufficient_credits", resp.get_json()

    threads = [threading.Thread(target=post) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [202] + [402] * 49
    assert hosted.balance("dee") == 0


def test_a_canceled_job_gets_its_credits_back_once(hosted_factory):
    hosted = hosted_factory(start=False)  # no worker: the job stays queued
    headers = hosted.user("eve", credits=5)
    resp = hosted.submit(headers, scale=2)
    assert resp.status_code == 202
    job_id = resp.get_json()["id"]
    assert hosted.balance("eve") == 4
    assert hosted.client.delete(f"/v1/jobs/{job_id}", headers=headers).status_code == 202
    assert hosted.client.delete(f"/v1/jobs/{job_id}", headers=headers).status_code == 204
    assert hosted.balance("eve") == 5
    with hosted.db.session() as s:
        assert ledger.settle(s, job_id, "canceled") is None  # already settled: nothing more
    assert [(r.kind, r.amount) for r in hosted.rows("eve")][:2] == [("release", 1), ("hold", -1)]


def test_a_job_that_times_out_gets_its_credits_back(hosted_factory):
    hosted = hosted_factory(job_timeout_s=1e-9)  # every job overruns its time at once
    headers = hosted.user("fay", credits=3)
    resp = hosted.submit(headers, scale=2)
    assert resp.status_code == 202
    job = wait_finished(hosted.client, resp.get_json()["id"], headers=headers)
    assert job["state"] == "failed" and job["error"]["code"] == "timeout"
    assert hosted.balance("fay") == 3
    assert [(r.kind, r.amount) for r in hosted.rows("fay")][:2] == [("release", 1), ("hold", -1)]


def test_the_daily_ceiling_refuses_with_429_saying_when_it_resets(hosted_factory):
    hosted = hosted_factory(start=False, daily_credit_limit=2)
    headers = hosted.user("gus", credits=100)
    assert hosted.submit(headers, scale=2).status_code == 202
    assert hosted.submit(headers, scale=2).status_code == 202
    resp = hosted.submit(headers, scale=2)
    assert resp.status_code == 429
    body = resp.get_json()
    assert body["code"] == "daily_credit_limit"
    assert "may spend 2 credits a day and has spent 2 today" in body["message"]
    assert "resets at" in body["message"] and int(resp.headers["Retry-After"]) > 0
    assert hosted.balance("gus") == 98
    account = hosted.client.get("/v1/account", headers=headers).get_json()
    assert account["limits"]["daily_credits"] == 2 and account["limits"]["spent_today"] == 2


def test_released_credits_do_not_count_toward_the_daily_ceiling(hosted_factory):
    hosted = hosted_factory(start=False, daily_credit_limit=1)
    headers = hosted.user("hal", credits=100)
    job_id = hosted.submit(headers, scale=2).get_json()["id"]
    assert hosted.submit(headers, scale=2).status_code == 429
    hosted.client.delete(f"/v1/jobs/{job_id}", headers=headers)
    assert hosted.submit(headers, scale=2).status_code == 202


def test_suspension_refuses_keys_cancels_queued_jobs_and_returns_their_credits(hosted_factory):
    from aiedit.billing.suspension import suspend, unsuspend

    hosted = hosted_factory(start=False)
    headers = hosted.user("ivy", credits=10)
    ids = [hosted.submit(headers, scale=2).get_json()["id"] for _ in range(3)]
    assert hosted.balance("ivy") == 7
    canceled = suspend(hosted.services.runner, "ivy", "chargeback under review")
    assert sorted(canceled) == sorted(ids)
    assert hosted.balance("ivy") == 10
    resp = hosted.client.get("/v1/account", headers=headers)
    assert resp.status_code == 403
    assert resp.get_json()["code"] == "account_suspended"
    assert "chargeback under review" in resp.get_json()["message"]
    assert hosted.submit(headers, scale=2).status_code == 403
    assert suspend(hosted.services.runner, "ivy") is None  # already suspended
    assert unsuspend(hosted.services.runner, "ivy")
    assert hosted.client.get("/v1/account", headers=headers).status_code == 200


def test_a_key_without_a_user_cannot_run_jobs_on_a_hosted_server(hosted):
    from aiedit.auth.keys import create_key

    _, key = create_key(hosted.db, "loose")
    resp = hosted.submit({"Authorization": f"Bearer {key}"}, scale=2)
    assert resp.status_code == 403 and resp.get_json()["code"] == "account_required"


def test_a_grant_below_zero_is_refused_and_needs_a_reason(hosted):
    hosted.user("jo", credits=2)
    account = hosted.account_id("jo")
    try:
        ledger.grant(hosted.db, account, -3, "correction")
    except ledger.CreditError as exc:
        assert "balance is 2" in exc.message
    else:
        raise AssertionError("a grant took the balance below zero")
    try:
        ledger.grant(hosted.db, account, 5, "  ")
    except ledger.CreditError as exc:
        assert "reason" in exc.message
    else:
        raise AssertionError("a grant without a reason was accepted")
    ledger.grant(hosted.db, account, -2, "correction")
    assert hosted.balance("jo") == 0


def _make_running(hosted, job_id: str, attempts: int) -> None:
    from datetime import timedelta

    from aiedit.store.db import utcnow
    from aiedit.store.models import Job

    with hosted.db.session() as s:
        job = s.get(Job, job_id)
        job.state, job.attempts, job.worker = "running", attempts, "gone-worker"
        job.started_at = utcnow() - timedelta(minutes=5)


def test_jobs_given_up_by_the_reaper_or_after_a_crash_get_their_credits_back(hosted_factory):
    from aiedit.jobs.runner import MAX_ATTEMPTS

    hosted = hosted_factory(start=False)
    headers = hosted.user("kim", credits=5)
    lost, crashed, retried = (hosted.submit(headers, scale=2).get_json()["id"] for _ in range(3))
    assert hosted.balance("kim") == 2
    _make_running(hosted, lost, MAX_ATTEMPTS)
    _make_running(hosted, retried, 1)
    requeued, failed = hosted.services.runner.requeue_lost(dead_after_s=1)
    assert failed == [lost] and requeued == [retried]
    assert hosted.balance("kim") == 3  # the lost job's credit is back; the re-queued one held
    _make_running(hosted, crashed, MAX_ATTEMPTS)
    hosted.services.runner.recover()  # a restart finds it cut off once too often: failed
    assert hosted.balance("kim") == 4
    hosted.services.runner.delete(retried)  # deleting an unfinished job (erasure) releases it
    assert hosted.balance("kim") == 5
    kinds = sorted((r.kind, r.job_id) for r in hosted.rows("kim") if r.kind == "release")
    assert [job for _, job in kinds] == sorted([lost, crashed, retried])


def test_an_accounts_own_ceiling_overrides_the_servers(hosted_factory):
    from sqlalchemy import update

    from aiedit.store.models import Account

    hosted = hosted_factory(start=False, daily_credit_limit=1)
    headers = hosted.user("lou", credits=10)
    with hosted.db.session() as s:
        s.execute(update(Account).where(Account.id == hosted.account_id("lou"))
                  .values(daily_credit_limit=0))  # 0: no ceiling for this account
    assert [hosted.submit(headers, scale=2).status_code for _ in range(3)] == [202] * 3
    with hosted.db.session() as s:
        s.execute(update(Account).where(Account.id == hosted.account_id("lou"))
                  .values(daily_credit_limit=4))
    assert [hosted.submit(headers, scale=2).status_code for _ in range(2)] == [202, 429]


def test_live_sessions_which_are_not_priced_are_refused_on_a_hosted_server(hosted):
    headers = hosted.user("max", credits=100)
    resp = hosted.client.post("/v1/live", headers=headers, json={"operation": "generate"})
    assert resp.status_code == 501 and resp.get_json()["code"] == "live_unavailable"
    assert "hosted" in resp.get_json()["message"]
    assert hosted.balance("max") == 100
