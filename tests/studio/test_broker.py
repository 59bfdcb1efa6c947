"""The Redis transport the studio's Celery app sends tickets with (aiedit.jobs.broker): kombu's
own, except that one client serves all of a channel's commands instead of a new one each; and
the publisher that sends tickets through it as Celery's `send_task` would."""

from __future__ import annotations

import base64
import json
import threading

import pytest
import redis
from kombu.transport import redis as kombu_redis

from aiedit.jobs import broker
from aiedit.jobs.queue_celery import make_celery
from tests.fixtures.services import Redis

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


def _popped(client, queue: str) -> dict:
    raw = client.rpop(queue)
    assert raw is not None, f"no message in {queue}"
    return json.loads(raw)


def test_a_published_ticket_is_the_message_send_task_sends(redis_server):
    url = redis_server.url.rsplit("/", 1)[0] + "/12"
    client = redis.Redis.from_url(url)
    client.flushdb()
    app = make_celery(url)
    app.send_task("aiedit.work", args=["job1", True], queue="aiedit.a", ignore_result=True)
    publisher = broker.Publisher(app)
    publisher.send("aiedit.work", ["job1", True], "aiedit.b")
    theirs, ours = _popped(client, "aiedit.a"), _popped(client, "aiedit.b")
    publisher.close()

    assert base64.b64decode(ours["body"]) == base64.b64decode(theirs["body"])
    assert json.loads(base64.b64decode(ours["body"]))[0] == ["job1", True]
    assert {k: v for k, v in ours.items() if k not in ("body", "headers", "properties")} == {
        k: v for k, v in theirs.items() if k not in ("body", "headers", "properties")}
    ids = {"id", "root_id"}
    assert ours["headers"]["id"] == ours["headers"]["root_id"] != theirs["headers"]["id"]
    assert ({k: v for k, v in ours["headers"].items() if k not in ids}
            == {k: v for k, v in theirs["headers"].items() if k not in ids})
    # reply_to names Celery's result queue, which tickets (ignore_result) never use
    unique = {"correlation_id", "delivery_tag", "reply_to", "delivery_info"}
    assert ({k: v for k, v in ours["properties"].items() if k not in unique}
            == {k: v for k, v in theirs["properties"].items() if k not in unique})
    assert ours["properties"]["delivery_info"] == {"exchange": "", "routing_key": "aiedit.b"}
    assert ours["properties"]["correlation_id"] == ours["headers"]["id"]


def test_the_publisher_shares_one_channel_between_threads(redis_server):
    url = redis_server.url.rsplit("/", 1)[0] + "/11"
    client = redis.Redis.from_url(url)
    client.flushdb()
    publisher = broker.Publisher(make_celery(url))
    channels = set()

    def send(n: int) -> None:
        for i in range(25):
            publisher.send("aiedit.work", [f"job{n}-{i}", False], "aiedit.threads")
            channels.add(id(publisher._channel()))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    publisher.close()
    assert client.llen("aiedit.threads") == 100
    assert len(channels) == 1
    sent = {json.loads(base64.b64decode(_popped(client, "aiedit.threads")["body"]))[0][0]
            for _ in range(100)}
    assert sent == {f"job{n}-{i}" for n in range(4) for i in range(25)}


def test_the_publisher_fails_while_redis_is_down_and_sends_again_once_it_is_back(tmp_path):
    server = Redis(tmp_path / "redis").start()
    try:
        url = f"redis://127.0.0.1:{server.port}/0"
        publisher = broker.Publisher(make_celery(url))
        publisher.send("aiedit.work", ["before", True], "aiedit.q")
        server.restart(down_s=0.2)  # the channel's pooled connection is now a dead socket
        publisher.send("aiedit.work", ["after", True], "aiedit.q")
        client = redis.Redis.from_url(url)
        assert [json.loads(base64.b64decode(_popped(client, "aiedit.q")["body"]))[0][0]
                for _ in range(client.llen("aiedit.q"))] == ["after"]  # no persistence
        server.stop()
        with pytest.raises(Exception):  # noqa: B017 - redis-py's or kombu's connection error
            publisher.send("aiedit.work", ["down", True], "aiedit.q")
        server.start()
        publisher.send("aiedit.work", ["back", True], "aiedit.q")
        assert json.loads(base64.b64decode(_popped(client, "aiedit.q")["body"]))[0][0] == "back"
        publisher.close()
    finally:
        server.cleanup()
