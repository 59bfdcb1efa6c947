"""The privacy page says what the server's settings make true: the retention period, whether
prompts reach the log, what hosted accounts keep, how to export and erase, the contact."""

from __future__ import annotations

import re

from aiedit.app import create_app, services_of
from aiedit.config import Config


def _page(tmp_path, check=None, **settings) -> str:
    app = create_app(Config(data_dir=tmp_path / f"d{len(settings)}", testing=True, **settings),
                     start=False)
    try:
        resp = app.test_client().get("/privacy")
        if check is not None:
            check(services_of(app))
    finally:
        services_of(app).stop()
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    return re.sub(r"\s+", " ", resp.text)


def test_the_page_follows_the_settings(tmp_path):
    def keeps_queued_jobs(services):
        assert not services.runner.expire_queued

    page = _page(tmp_path, keeps_queued_jobs)
    assert "deleted 24 hours after the job finishes" in page
    assert "keeps its images until it has run" in page
    assert "never holds your prompts or images" in page
    assert "set a contact address" in page
    assert "account.json" not in page, "a personal server has no accounts to export"

    page = _page(tmp_path, retention_hours=72.0, privacy_contact="privacy@studio.example",
                 log_prompts=True)
    assert "deleted 3 days after the job finishes" in page
    assert "writes job parameters, prompts included, to its log" in page
    assert 'href="mailto:privacy@studio.example"' in page


def test_a_hosted_server_names_what_accounts_keep_and_the_anonymised_ledger(
        tmp_path, postgres, redis_server):
    def expires_queued_jobs(services):
        assert services.runner.expire_queued, "hosted: no upload outlives the period"

    page = _page(tmp_path, expires_queued_jobs, mode="hosted", database_url=_migrated(postgres),
                 broker_url=redis_server.url, retention_hours=0.5, min_age=16)
    assert "deleted 30 minutes after the job finishes" in page
    assert "still waiting in the queue 30 minutes after it was sent is canceled" in page
    assert "at least 16" in page
    assert "GET /v1/account/export" in page and "account.json" in page
    assert "aiedit users erase NAME" in page
    assert "Credit ledger rows needed for the tax records are kept, anonymised" in page


def _migrated(postgres) -> str:
    from aiedit.store.db import Database

    url = postgres.database()
    db = Database(url)
    db.migrate()
    db.dispose()
    return url
