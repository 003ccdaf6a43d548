"""Publish/subscribe for live pages: in-process by default, Redis pub/sub across processes.

Teachers' sockets listen on `session:<id>`. A student's record changes are published on
`session:<id>:student:<user id>` and also reach `student:<user id>`, the channel a student's one socket
listens on, so that a page needs a single socket whatever number of classes are open.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
from collections import defaultdict

from flask import current_app

log = logging.getLogger(__name__)


_WAKE = object()  # put in a subscription's queue to wake its reader without a message


class Subscription:
    def __init__(self, channels: tuple[str, ...]):
        self.channels = channels
        self.queue: queue.Queue = queue.Queue(maxsize=10_000)

    def get(self, timeout: float) -> dict | None:
        """Return the next message, or None after timeout seconds or when interrupted."""
        try:
            message = self.queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        return None if message is _WAKE else message

    def interrupt(self) -> None:
        """Wake a reader waiting in get() (it answers None)."""
        try:
            self.queue.put_nowait(_WAKE)
        except queue.Full:
            pass  # the reader has messages to read and will look at its socket's state soon anyway


class LocalBroker:
    """Fan-out to the sockets of this process."""

    def __init__(self):
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self._lock = threading.Lock()

    def subscribe(self, *channels: str) -> Subscription:
        """Open a subscription to messages on the given channels."""
        sub = Subscription(channels)
        with self._lock:
            for channel in channels:
                self._subscribers[channel].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Close a subscription; channels without subscribers are forgotten."""
        with self._lock:
            for channel in sub.channels:
                self._subscribers[channel].discard(sub)
                if not self._subscribers[channel]:
                    del self._subscribers[channel]

    def deliver(self, channel: str, message: dict) -> None:
        """Queue a message for this process's subscribers of a channel (and of its student-wide alias)."""
        alias = own_records_alias(channel)
        with self._lock:
            targets = set(self._subscribers.get(channel, ()))
            if alias is not None:
                targets |= self._subscribers.get(alias, set())
        for sub in targets:
            try:
                sub.queue.put_nowait(message)
            except queue.Full:
                log.warning("dropping a message for a stalled socket on %s", channel)

    def publish(self, channel: str, message: dict) -> None:
        """Send a message to a channel's subscribers."""
        self.deliver(channel, message)

    def publish_many(self, messages: list[tuple[str, dict]]) -> None:
        """Send several (channel, message) pairs."""
        for channel, message in messages:
            self.publish(channel, message)


class RedisBroker(LocalBroker):
    """Publish through Redis; one listener thread per process delivers to that process's sockets."""

    def __init__(self, url: str, prefix: str):
        super().__init__()
        import redis

        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix + "rt:"
        self._listener: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_lock = threading.Lock()

    def publish(self, channel: str, message: dict) -> None:
        """Publish a message on a channel through Redis, to every process."""
        self.redis.publish(self.prefix + channel, json.dumps(message))

    def publish_many(self, messages: list[tuple[str, dict]]) -> None:
        """Publish several (channel, message) pairs in one Redis round trip."""
        pipe = self.redis.pipeline(transaction=False)  # one round trip for all of them
        for channel, message in messages:
            pipe.publish(self.prefix + channel, json.dumps(message))
        pipe.execute()

    def subscribe(self, *channels: str) -> Subscription:
        """Open a subscription, starting this process's Redis listener if needed."""
        self._ensure_listener()
        return super().subscribe(*channels)

    def _ensure_listener(self) -> None:
        with self._start_lock:
            if self._listener is None or not self._listener.is_alive():
                self._ready.clear()
                self._listener = threading.Thread(target=self._listen, name="redis-pubsub", daemon=True)
                self._listener.start()
        self._ready.wait(timeout=5)

    def _listen(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.psubscribe(self.prefix + "*")
        self._ready.set()
        for item in pubsub.listen():
            if item.get("type") != "pmessage":
                continue
            try:
                channel = item["channel"].decode()[len(self.prefix):]
                self.deliver(channel, json.loads(item["data"]))
            except (ValueError, UnicodeDecodeError):
                log.warning("ignoring a malformed real-time message")


def make_broker(redis_url: str | None, prefix: str) -> LocalBroker:
    """Build the Redis broker when a Redis URL is set, else the in-process one."""
    return RedisBroker(redis_url, prefix) if redis_url else LocalBroker()


def broker() -> LocalBroker:
    """Return the application's broker."""
    return current_app.extensions["attendance_broker"]


def session_channel(class_session_id: int) -> str:
    """Name the channel of one class session's changes, for its teachers."""
    return f"session:{class_session_id}"


def student_channel(class_session_id: int, student_id: int) -> str:
    """Name the channel of one student's changes in one class session."""
    return f"session:{class_session_id}:student:{student_id}"


def own_records_channel(student_id: int) -> str:
    """Name the channel of every change to one student's records, whatever the session."""
    return f"student:{student_id}"


def own_records_alias(channel: str) -> str | None:
    """Return the student-wide channel a per-session student channel also reaches, or None."""
    head, sep, student = channel.rpartition(":student:")
    return own_records_channel(int(student)) if sep and head.startswith("session:") and student.isdigit() else None
