"""The Redis transport the studio's Celery app sends tickets with (aiedit.jobs.broker): kombu's
own, except that one client serves all of a channel's commands instead of a new one each."""

from __future__ import annotations

import pytest
import redis
from kombu.transport import redis as kombu_redis

from aiedit.jobs import broker
from aiedit.jobs.queue_celery import make_celery

pytestmark = pytest.mark.studio


def test_tickets_go_through_one_client_and_arrive(redis_server, monkeypatch):
    url = redis_server.url.rsplit("/", 1)[0] + "/13"
    client = redis.Redis.from_url(url)
    client.flushdb()
    built = []
    original = kombu_redis.Channel._create_client

    def counting(self, asynchronous=False):
        built.append(asynchronous)
        return original(self, asynchronous)

    monkeypatch.setattr(kombu_redis.Channel, "_create_client", counting)
    app = make_celery(url)
    assert app.connection_for_write().transport_cls is broker.Transport
    for n in range(5):
        app.send_task("aiedit.work", args=[f"job{n}", True], queue="aiedit.test",
                      ignore_result=True)
    assert client.llen("aiedit.test") == 5, "every ticket is in the list"
    assert built.count(False) == 1, f"one client for five tickets, not {built.count(False)}"


def test_other_redis_urls_keep_kombus_transport():
    assert broker.transport_for("redis://127.0.0.1:6379/0") is broker.Transport
    for url in ("rediss://redis.example:6380/0", "sentinel://127.0.0.1:26379",
                "redis+socket:///run/redis.sock"):
        assert broker.transport_for(url) is None
        assert make_celery(url).conf.broker_transport is None
