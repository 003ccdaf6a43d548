"""The expiring store holds OIDC state and nonces for every process: database or Redis."""
import threading
import time

import pytest

from lti.store import DatabaseStore, RedisStore, get_store
from tests.support.clock import store_time


@pytest.fixture(params=["database", "redis"])
def store(request, app):
    with app.app_context():
        if request.param == "redis":
            try:
                candidate = RedisStore("redis://127.0.0.1:6379/0", prefix=f"test-store-{time.time_ns()}:")
                candidate.redis.ping()
            except Exception:
                pytest.skip("no Redis on 127.0.0.1:6379")
            yield candidate
        else:
            yield DatabaseStore()


@pytest.fixture
def let_pass(store, monkeypatch):
    """Move time forward by some seconds: the database store's clock is faked, Redis expires keys in real time."""
    return store_time(store, monkeypatch)


def test_put_get_pop(store):
    store.put("k", "v", 60)
    assert store.get("k") == "v"
    assert store.pop("k") == "v"
    assert store.pop("k") is None
    assert store.get("k") is None


def test_expiry(store, let_pass):
    store.put("short", "v", 1)
    let_pass(1.3)
    assert store.get("short") is None
    assert store.pop("short") is None
    assert store.add("short", "again", 60) is True


def test_add_only_once(store):
    assert store.add("nonce", "1", 60) is True
    assert store.add("nonce", "1", 60) is False


def test_incr_counts_and_expires(store, let_pass):
    assert [store.incr("c", 60) for _ in range(3)] == [1, 2, 3]
    store.incr("gone", 1)
    let_pass(1.3)
    assert store.incr("gone", 60) == 1


def test_pop_is_won_by_exactly_one_of_many_threads(store, app):
    store.put("race", "v", 60)
    wins = []

    def worker():
        with app.app_context():
            if store.pop("race") is not None:
                wins.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_app_uses_redis_only_when_configured(make_app):
    app = make_app(REDIS_URL=None)
    with app.app_context():
        assert isinstance(get_store(), DatabaseStore)
    app = make_app(REDIS_URL="redis://127.0.0.1:6379/0")
    with app.app_context():
        assert isinstance(get_store(), RedisStore)
