"""An expiring key-value store shared by every process: the database by default, Redis when configured.

OIDC state and nonces live here (never in process memory), so a login served by one worker and
its launch served by another agree, and a consumed state is gone for all of them.
"""
from __future__ import annotations

import random
import time
from typing import Protocol

from flask import current_app
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from extensions import db
from lti.models import StoreEntry


class ExpiringStore(Protocol):
    """What the LTI layer needs of a shared store: expiring keys, atomic add and pop, counters."""

    def put(self, key: str, value: str, ttl: int) -> None:
        """Set key to value for ttl seconds, replacing any previous value."""

    def add(self, key: str, value: str, ttl: int) -> bool:
        """Set key only if it is absent or expired; answer whether it was set."""

    def get(self, key: str) -> str | None:
        """Return the live value of key, or None."""

    def pop(self, key: str) -> str | None:
        """Delete key and return its live value; of two concurrent callers only one gets it."""

    def incr(self, key: str, ttl: int) -> int:
        """Add one to a counter that expires ttl seconds after its first increment."""


class DatabaseStore:
    """The store over the `kv_store` table, each call in its own short transaction."""

    table = StoreEntry.__table__

    def _purge_sometimes(self, conn) -> None:
        if random.random() < 0.02:
            conn.execute(delete(self.table).where(self.table.c.expires_at <= time.time()))

    def put(self, key: str, value: str, ttl: int) -> None:
        """Set key to value for ttl seconds, replacing any previous value."""
        with db.engine.begin() as conn:
            conn.execute(delete(self.table).where(self.table.c.key == key))
            conn.execute(insert(self.table).values(key=key, value=value, expires_at=time.time() + ttl))
            self._purge_sometimes(conn)

    def add(self, key: str, value: str, ttl: int) -> bool:
        """Set key only if it is absent or expired; answer whether it was set."""
        now = time.time()
        try:
            with db.engine.begin() as conn:
                conn.execute(delete(self.table).where(self.table.c.key == key, self.table.c.expires_at <= now))
                conn.execute(insert(self.table).values(key=key, value=value, expires_at=now + ttl))
        except IntegrityError:
            return False
        return True

    def get(self, key: str) -> str | None:
        """Return the live value of key, or None."""
        with db.engine.connect() as conn:
            return conn.execute(
                select(self.table.c.value).where(self.table.c.key == key, self.table.c.expires_at > time.time())
            ).scalar()

    def pop(self, key: str) -> str | None:
        """Delete key and return its live value; of two concurrent callers only one gets it."""
        with db.engine.begin() as conn:
            return conn.execute(
                delete(self.table)
                .where(self.table.c.key == key, self.table.c.expires_at > time.time())
                .returning(self.table.c.value)
            ).scalar()

    def incr(self, key: str, ttl: int) -> int:
        """Add one to a counter that expires ttl seconds after its first increment."""
        now = time.time()
        for _ in range(3):
            with db.engine.begin() as conn:
                conn.execute(delete(self.table).where(self.table.c.key == key, self.table.c.expires_at <= now))
                row = conn.execute(
                    update(self.table)
                    .where(self.table.c.key == key)
                    .values(value=(self.table.c.value.cast(db.Integer) + 1).cast(db.Text))
                    .returning(self.table.c.value)
                ).scalar()
                if row is not None:
                    return int(row)
            try:
                with db.engine.begin() as conn:
                    conn.execute(insert(self.table).values(key=key, value="1", expires_at=now + ttl))
                return 1
            except IntegrityError:
                continue
        raise RuntimeError(f"could not increment {key}")


class RedisStore:
    """The store over Redis; every operation is a single atomic command."""

    def __init__(self, url: str, prefix: str = "attendance:"):
        import redis

        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.prefix = prefix

    def put(self, key: str, value: str, ttl: int) -> None:
        """Set key to value for ttl seconds, replacing any previous value."""
        self.redis.set(self.prefix + key, value, ex=ttl)

    def add(self, key: str, value: str, ttl: int) -> bool:
        """Set key only if it is absent or expired; answer whether it was set."""
        return bool(self.redis.set(self.prefix + key, value, ex=ttl, nx=True))

    def get(self, key: str) -> str | None:
        """Return the live value of key, or None."""
        return self.redis.get(self.prefix + key)

    def pop(self, key: str) -> str | None:
        """Delete key and return its live value, atomically (GETDEL)."""
        return self.redis.getdel(self.prefix + key)

    def incr(self, key: str, ttl: int) -> int:
        """Add one to a counter that expires ttl seconds after its first increment."""
        pipe = self.redis.pipeline()
        pipe.incr(self.prefix + key)
        pipe.expire(self.prefix + key, ttl, nx=True)
        count, _ = pipe.execute()
        return int(count)


def make_store(redis_url: str | None, prefix: str = "attendance:") -> ExpiringStore:
    """Choose Redis when a URL is given, else the database."""
    return RedisStore(redis_url, prefix) if redis_url else DatabaseStore()


def get_store() -> ExpiringStore:
    """Return the current app's store."""
    return current_app.extensions["lti_store"]
