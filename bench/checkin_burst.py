#!/usr/bin/env python
"""The busiest minute of a lecture: 1,000 students check in at once while the teacher's dashboard listens.

A benchmark that PRINTS figures (it asserts nothing). In one run it:

1. creates a scratch database (PostgreSQL by default: a fresh `checkin_bench_<pid>` database on the
   server of --database-url; or SQLite with --database-url sqlite), migrates it with the tool's own
   `create_app()` (AUTO_MIGRATE), and seeds a registration + deployment, one course, 1,000 students
   and a teacher (with enrollments) and the class sessions of every phase;
2. mints the launch tokens directly with `lti.tokens.issue_launch_token` (no LTI launch), with the
   SECRET_KEY the servers get;
3. counts the SQL statements (and Redis round trips) of ONE check-in in-process (Flask test client,
   SQLAlchemy `before_cursor_execute`), and profiles a few hundred serial check-ins (where the time goes);
4. serves the tool with gunicorn (2 gthread workers x 8 threads, REDIS_URL set, AUTO_MIGRATE=0) and a
   bare Flask app (bench/bare_app.py: one INSERT per POST) with the same gunicorn settings and database;
5. warms both up, then measures 3 times, alternating tool / bare: 64 keep-alive clients (threads, one
   http.client connection each) send 1,000 POSTs; for the tool, each student checks in exactly once
   with the code valid at send time while a teacher WebSocket counts `student_submission` messages;
6. prints requests, errors, req/s, p50 / p99 latency, the medians, the tool/bare throughput ratio
   (goal >= 0.7), check-ins acknowledged / delivered to the socket / stored, and cleans everything up.

Run from the repository root:  .venv/bin/python bench/checkin_burst.py   (see bench/README.md)
"""
from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import itertools
import json
import math
import os
import pstats
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(BENCH)]

ROOM = (48.8462, 2.3447, 80.0)  # latitude, longitude, radius (m) of the lecture hall


class TimeLimit(Exception):
    pass


def log(*parts) -> None:
    print(*parts, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# -- CPU accounting (from /proc: this machine's processes only) --------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid) -> tuple[int, float] | None:
    """(parent pid, CPU seconds user+system) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / TICK


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds of a process and all its descendants (a gunicorn master and its workers)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(entry)
            if st:
                stats[int(entry)] = st
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in stats.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return {pid: stats[pid][1] for pid in tree if pid in stats}


def backend_cpu(engine, application_name: str) -> dict[int, float]:
    """CPU seconds of the PostgreSQL backends serving one application_name (empty on SQLite)."""
    if engine.dialect.name != "postgresql":
        return {}
    from sqlalchemy import text

    with engine.connect() as conn:
        pids = list(conn.scalars(text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"),
                                 {"n": application_name}))
    return {pid: st[1] for pid in pids if (st := _proc_stat(pid))}


class CpuWindow:
    """CPU used during a phase by the server's processes, its PostgreSQL backends and this client process."""

    def __init__(self, server: "Server", engine):
        self.server, self.engine = server, engine
        self.workers, self.pg = tree_cpu(server.proc.pid), backend_cpu(engine, server.application_name)
        self.client = sum(os.times()[:2])

    def stop(self) -> tuple[float, float, float]:
        workers, pg = tree_cpu(self.server.proc.pid), backend_cpu(self.engine, self.server.application_name)
        delta = lambda after, before: sum(v - before.get(pid, 0.0) for pid, v in after.items())  # noqa: E731
        return delta(workers, self.workers), delta(pg, self.pg), sum(os.times()[:2]) - self.client


# -- database --------------------------------------------------------------------------------------
class ScratchDatabase:
    """A fresh database for the run: a new PostgreSQL database on the given server, or a SQLite file."""

    def __init__(self, url: str, tmp: Path, in_place: bool):
        self.in_place = in_place
        self.created = None
        if url == "sqlite" or url.startswith("sqlite:"):
            self.kind = "sqlite"
            self.url = url if url.startswith("sqlite:///") else f"sqlite:///{tmp / 'bench.db'}"
            return
        self.kind = "postgresql"
        self.server_url = url.replace("postgresql+psycopg://", "postgresql://", 1).replace("postgres://", "postgresql://", 1)
        if in_place:
            self.url = self.server_url
            return
        import psycopg

        name = f"checkin_bench_{os.getpid()}"
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created = name
        parts = urlsplit(self.server_url)
        self.url = urlunsplit(parts._replace(path="/" + name))

    def check_empty(self, engine) -> None:
        from sqlalchemy import inspect

        tables = inspect(engine).get_table_names()
        if tables:
            raise SystemExit(f"--in-place needs an empty database; {self.url} has tables {tables[:5]}... "
                             "(drop --in-place to use a scratch database)")

    def drop(self, engine_factory) -> None:
        if self.kind == "sqlite":
            return  # the file lives in the temp dir, removed with it
        if self.created:
            import psycopg

            with psycopg.connect(self.server_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.created}" WITH (FORCE)')
            return
        # in place: drop what the run created
        from sqlalchemy import MetaData, text

        engine = engine_factory()
        meta = MetaData()
        meta.reflect(engine)
        meta.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()


# -- servers ---------------------------------------------------------------------------------------
class Server:
    def __init__(self, name: str, app_spec: str, chdir: Path, env: dict, args, tmp: Path, ready_path: str):
        self.name, self.port = name, free_port()
        self.application_name = f"checkin_bench_{name}"
        self.log_path = tmp / f"{name}.log"
        self.log_file = open(self.log_path, "wb")
        # A gunicorn hook marks each worker once it has loaded the app: the runs start when all of them can serve.
        self.ready_dir = tmp / f"{name}-ready"
        self.ready_dir.mkdir()
        self.workers = args.workers
        hooks = tmp / f"{name}_gunicorn_hooks.py"
        hooks.write_text("import os\n\n\ndef post_worker_init(worker):\n"
                         f"    open(os.path.join({str(self.ready_dir)!r}, str(os.getpid())), 'w').close()\n")
        cmd = [sys.executable, "-m", "gunicorn", "--config", str(hooks), "--workers", str(args.workers),
               "--worker-class", "gthread", "--threads", str(args.threads), "--bind", f"127.0.0.1:{self.port}",
               "--chdir", str(chdir), "--log-level", "warning", "--timeout", "60", "--graceful-timeout", "3", app_spec]
        self.proc = subprocess.Popen(cmd, env=dict(env, TOOL_BASE_URL=f"http://127.0.0.1:{self.port}"),
                                     stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True)
        self.ready_path = ready_path

    def wait_ready(self) -> None:
        ready_path = self.ready_path
        name = self.name
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} server exited: {self.tail()}")
            try:
                if len(list(self.ready_dir.iterdir())) >= self.workers:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                    conn.request("GET", ready_path)
                    if conn.getresponse().status == 200:
                        conn.close()
                        break
                    conn.close()
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{name} server did not start: {self.tail()}")

    def tail(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own gunicorn's process group only
                self.proc.wait(timeout=5)
        self.log_file.close()


def call(port: int, method: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, {"raw": data[:300].decode(errors="replace")}


# -- load ------------------------------------------------------------------------------------------
@dataclass
class Phase:
    label: str
    target: str  # tool or bare
    requests: int = 0
    wall_s: float = 0.0
    latencies_ms: list = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    error_codes: Counter = field(default_factory=Counter)
    acked_ids: set = field(default_factory=set)
    delivered: int | None = None
    socket_extra: int = 0
    stored: int | None = None
    stored_acked: int | None = None
    rotation: int | None = None
    cpu: tuple = (0.0, 0.0, 0.0)  # seconds: server processes, PostgreSQL backends, client process

    @property
    def ok(self) -> int:
        return self.statuses.get(201, 0)

    @property
    def errors(self) -> int:
        return self.requests - self.ok

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0


def run_load(port: int, count: int, clients: int, build, phase: Phase, timeout: float) -> None:
    """`clients` threads, one keep-alive connection each, send `count` POSTs built by build(i)."""
    counter = itertools.count()
    results: list = [None] * count
    barrier = threading.Barrier(clients + 1)

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.connect()
        except OSError:
            pass
        barrier.wait()
        while True:
            i = next(counter)
            if i >= count:
                break
            path, headers, body = build(i)
            started = time.perf_counter()
            try:
                conn.request("POST", path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:
                data, status = repr(exc).encode(), 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            results[i] = (status, (time.perf_counter() - started) * 1000, data)
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        while t.is_alive():
            t.join(timeout=0.5)
    phase.wall_s = time.perf_counter() - started
    phase.requests = count
    for status, latency, data in results:
        phase.statuses[status] += 1
        phase.latencies_ms.append(latency)
        if status == 201 and phase.target == "tool":
            phase.acked_ids.add(json.loads(data)["attendance"]["id"])
        elif status != 201:
            try:
                phase.error_codes[f"{status} {json.loads(data)['error']['code']}"] += 1
            except (ValueError, KeyError, TypeError):
                phase.error_codes[f"{status} {data[:80].decode(errors='replace')}"] += 1


class TeacherSocket:
    """The teacher's dashboard: a WebSocket counting student_submission messages of one session."""

    def __init__(self, port: int, session_id: int, token: str):
        import simple_websocket

        self.session_id = session_id
        self.ws = simple_websocket.Client.connect(f"ws://127.0.0.1:{port}/ws/attendance/{session_id}?token={token}")
        first = self.ws.receive(timeout=30)
        if first is None or json.loads(first).get("type") != "connected":
            self.ws.close()
            raise RuntimeError(f"teacher socket: unexpected first message {first!r}")
        self.ids: set[int] = set()
        self.messages = Counter()
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        from simple_websocket import ConnectionClosed

        while not self.stopping:
            try:
                raw = self.ws.receive(timeout=0.5)
            except ConnectionClosed:
                return
            if raw is None:
                continue
            message = json.loads(raw)
            with self.lock:
                self.messages[message.get("type")] += 1
                attendance = message.get("attendance") or {}
                if message.get("type") == "student_submission" and attendance.get("class_session_id") == self.session_id:
                    self.ids.add(attendance["id"])

    def delivered(self, acked: set[int]) -> int:
        with self.lock:
            return len(self.ids & acked)

    def close(self):
        self.stopping = True
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.thread.join(timeout=2)


# -- in-process: statements per check-in, and where the time goes ------------------------------------
class Meter:
    """Counts and times SQL statements, commits, pool pre-pings and Redis round trips in this process."""

    def __init__(self, engine):
        from redis.connection import AbstractConnection
        from sqlalchemy import event

        self.active = False
        self.reset()
        self.engine = engine
        self._starts = threading.local()

        @event.listens_for(engine, "before_cursor_execute")
        def before(conn, cursor, statement, parameters, context, executemany):
            self._starts.t = time.perf_counter()
            if self.active:
                self.statements.append(" ".join(statement.split()))

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn, cursor, statement, parameters, context, executemany):
            if self.active:
                self.sql_s += time.perf_counter() - self._starts.t

        @event.listens_for(engine, "checkout")
        def checkout(dbapi_connection, record, proxy):
            if self.active:
                self.checkouts += 1

        meter = self
        dialect = engine.dialect
        original_ping = dialect.do_ping

        def timed_ping(dbapi_connection):
            started = time.perf_counter()
            try:
                return original_ping(dbapi_connection)
            finally:
                if meter.active:
                    meter.pings += 1
                    meter.ping_s += time.perf_counter() - started

        dialect.do_ping = timed_ping
        original_commit = dialect.do_commit

        def timed_commit(dbapi_connection):
            started = time.perf_counter()
            try:
                return original_commit(dbapi_connection)
            finally:
                if meter.active:
                    meter.commits += 1
                    meter.commit_s += time.perf_counter() - started

        dialect.do_commit = timed_commit
        original_rollback = dialect.do_rollback

        def timed_rollback(dbapi_connection):
            started = time.perf_counter()
            try:
                return original_rollback(dbapi_connection)
            finally:
                if meter.active:
                    meter.rollbacks += 1
                    meter.commit_s += time.perf_counter() - started

        dialect.do_rollback = timed_rollback
        original_send, original_read = AbstractConnection.send_packed_command, AbstractConnection.read_response

        def send(conn, command, *a, **kw):
            started = time.perf_counter()
            try:
                return original_send(conn, command, *a, **kw)
            finally:
                if meter.active:
                    meter.redis_s += time.perf_counter() - started
                    packed = command if isinstance(command, (bytes, bytearray)) else b"".join(command)
                    names = re.findall(rb"^\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n", bytes(packed))
                    meter.redis_cmds.append(names[0].decode().upper() if names else "?")

        def read(conn, *a, **kw):
            started = time.perf_counter()
            try:
                return original_read(conn, *a, **kw)
            finally:
                if meter.active:
                    meter.redis_s += time.perf_counter() - started

        AbstractConnection.send_packed_command = send
        AbstractConnection.read_response = read
        try:  # the transaction commands psycopg really sends (BEGIN before a statement, COMMIT, ROLLBACK)
            from psycopg._connection_base import BaseConnection
        except ImportError:
            return
        original_command = BaseConnection._exec_command

        def command(conn, cmd, *a, **kw):
            if meter.active:
                text_ = cmd.decode() if isinstance(cmd, bytes) else str(cmd) if isinstance(cmd, str) else "?"
                meter.pg_commands.append(text_.split()[0].upper() if text_.split() else "?")
            return original_command(conn, cmd, *a, **kw)

        BaseConnection._exec_command = command

    def reset(self):
        self.statements, self.redis_cmds, self.pg_commands = [], [], []
        self.checkouts = self.pings = self.commits = self.rollbacks = 0
        self.sql_s = self.ping_s = self.commit_s = self.redis_s = 0.0

    @property
    def pg_round_trips(self) -> int:
        """Statements + pre-ping SELECT 1s + the BEGIN / COMMIT / ROLLBACK psycopg sends (each one network round trip)."""
        return len(self.statements) + self.pings + len(self.pg_commands) if self.pg_commands else 0


def in_process_figures(app, seed, args) -> None:
    from extensions import db

    with app.app_context():
        meter = Meter(db.engine)
    client = app.test_client()
    sid = seed.sessions["count"]
    teacher = {"Authorization": f"Bearer {seed.teacher_token}"}
    status, body = (lambda r: (r.status_code, r.get_json()))(
        client.post("/api/generate-code/", json={"class_session_id": sid}, headers=teacher))
    if status != 200:
        raise RuntimeError(f"in-process generate-code failed: {status} {body}")
    rotation = body["rotation_seconds"]
    from attendance import codes

    def check_in(i):
        code = codes.current_code(seed.secrets[sid], datetime.now(timezone.utc), rotation).code
        response = client.post("/api/submit-attendance/", headers={"Authorization": f"Bearer {seed.student_tokens[i]}"},
                               json=student_body(i, code))
        if response.status_code != 201:
            raise RuntimeError(f"in-process check-in failed: {response.status_code} {response.get_data(as_text=True)[:300]}")

    check_in(0)  # warm: first-request work (imports, pool connect, limiter scripts) is not the steady state
    check_in(1)
    meter.reset()
    meter.active = True
    started = time.perf_counter()
    check_in(2)
    total = time.perf_counter() - started
    meter.active = False
    log(f"\nONE CHECK-IN IN-PROCESS (Flask test client, POST /api/submit-attendance/, {seed.db_kind}, Redis):")
    log(f"  SQL statements: {len(meter.statements)}   (+ {meter.commits} COMMIT, {meter.pings} pool pre-ping "
        f"'SELECT 1', {meter.checkouts} pool checkout(s))")
    for n, statement in enumerate(meter.statements, 1):
        log(f"    {n}. {statement[:150]}{'...' if len(statement) > 150 else ''}")
    if meter.pg_round_trips:
        log(f"  PostgreSQL round trips: {meter.pg_round_trips}   ({len(meter.statements)} statements + {meter.pings} "
            f"pre-ping SELECT 1 + {', '.join(f'{k} x{v}' for k, v in Counter(meter.pg_commands).items())}, "
            f"as psycopg sends them)")
    log(f"  Redis round trips: {len(meter.redis_cmds)}   ({', '.join(f'{k} x{v}' for k, v in Counter(meter.redis_cmds).items())})")
    log(f"  wall {total * 1000:.1f} ms")

    n = args.profile
    if n > 0:
        ms = lambda s: s / n * 1000  # noqa: E731
        meter.reset()
        meter.active = True
        started = time.perf_counter()
        for i in range(3, 3 + n):
            check_in(i)
        total = time.perf_counter() - started
        meter.active = False
        waits = meter.sql_s + meter.commit_s + meter.ping_s + meter.redis_s
        log(f"\nWHERE THE TIME GOES ({n} serial check-ins in-process, one thread, no profiler):")
        log(f"  per check-in: total {ms(total):.2f} ms = waiting on the database {ms(meter.sql_s + meter.commit_s + meter.ping_s):.2f}"
            f" (statements {ms(meter.sql_s):.2f}, COMMIT/ROLLBACK {ms(meter.commit_s):.2f}, pre-pings {ms(meter.ping_s):.2f})"
            f" + Redis {ms(meter.redis_s):.2f} + Python CPU {ms(total - waits):.2f}")
        log(f"  per check-in: {len(meter.statements) / n:.1f} SQL statements, "
            + (f"{meter.pg_round_trips / n:.1f} PostgreSQL round trips, " if meter.pg_round_trips else "")
            + f"{len(meter.redis_cmds) / n:.1f} Redis round trips")
        profiler = cProfile.Profile(time.process_time)  # CPU time: waits on PostgreSQL and Redis do not count
        profiler.enable()
        for i in range(3 + n, 3 + 2 * n):
            check_in(i)
        profiler.disable()

        def show(sort, title, *restrictions):
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats(sort).print_stats(*restrictions)
            lines = [line for line in stream.getvalue().splitlines() if line.strip()]
            first = next((k for k, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
            log(f"  {title} (cProfile with a CPU-time clock, {n} more check-ins; seconds are totals over {n}):")
            site = str(Path(sys.prefix)) + "/lib/python3.11/site-packages/"
            for line in lines[first:]:
                log("    " + line.replace(str(ROOT) + "/", "").replace(site, ""))

        stats = pstats.Stats(profiler)

        def cum(file_part, func, caller=None):
            total = 0.0
            for (filename, _line, name), (_cc, _nc, _tt, ct, callers) in stats.stats.items():
                if name != func or file_part not in filename:
                    continue
                if caller is None:
                    total += ct
                else:
                    total += sum(v[3] for (cf, _cl, cn), v in callers.items() if cn == caller[1] and caller[0] in cf)
            return total

        request_cpu = cum("flask/app.py", "wsgi_app")
        rc = cum("attendance/checkin.py", "record_check_in")
        parts = [
            ("Flask-Limiter (2 wrong-code limits: test before, headers after)",
             cum("flask_limiter/", "_check_request_limit") + cum("flask_limiter/", "__inject_headers")),
            ("launch token check (itsdangerous)", cum("lti/tokens.py", "read_launch_token")),
            ("input parsing (marshmallow)", cum("attendance/inputs.py", "load")),
            ("record_check_in: SELECT session+policy, SELECT same device/IP",
             cum("sqlalchemy/orm/scoping.py", "execute", ("attendance/checkin.py", "record_check_in"))),
            ("record_check_in: INSERT + COMMIT (ORM flush)",
             cum("sqlalchemy/orm/scoping.py", "commit", ("attendance/checkin.py", "record_check_in"))),
            ("record_check_in: reload user + record after commit, JSON, 2 PUBLISH",
             cum("sqlalchemy/orm/scoping.py", "get", ("attendance/checkin.py", "record_check_in"))
             + cum("attendance/records.py", "publish_record")),
        ]
        parts.append(("record_check_in: code HMAC, geofence, risk score",
                      cum("attendance/codes.py", "matches") + cum("attendance/geo.py", "judge")
                      + cum("attendance/risk.py", "score_check_in")))
        parts.append(("record_check_in: the rest (building the select() constructs, Policy, ORM objects, ...)",
                      rc - sum(v for _, v in parts[3:])))
        parts.append(("response JSON (jsonify)", cum("attendance/web/api.py", "ok")))
        parts.append(("Flask / Werkzeug request handling, teardown, the rest", request_cpu - sum(v for _, v in parts)))
        log(f"  CPU per check-in by part (cProfile with a CPU-time clock over {n} more check-ins; the profiler inflates "
            f"absolute times, read the shares):")
        for name, value in parts:
            log(f"    {value / n * 1000:7.2f} ms  {value / request_cpu * 100:5.1f} %  {name}")
        log(f"    {request_cpu / n * 1000:7.2f} ms  100.0 %  whole request (Flask wsgi_app)")
        show("tottime", "top functions by own time", args.profile_lines)
    client.post("/api/stop-checkin/", json={"class_session_id": sid}, headers=teacher)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# -- schema ----------------------------------------------------------------------------------------
def schema_drift(app) -> list[str]:
    """Tables or columns of the models that the migrated database lacks."""
    from sqlalchemy import inspect

    from extensions import db

    with app.app_context():
        inspector = inspect(db.engine)
        present = set(inspector.get_table_names())
        drift = []
        for table in db.metadata.sorted_tables:
            if table.name not in present:
                drift.append(f"table {table.name} missing")
                continue
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            drift += [f"{table.name}.{c.name} missing" for c in table.columns if c.name not in columns]
        db.engine.dispose()
    return drift


def rebuild_schema(app) -> None:
    from sqlalchemy import MetaData, text

    from extensions import db

    with app.app_context():
        existing = MetaData()
        existing.reflect(db.engine)
        existing.drop_all(db.engine)
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.create_all()
        db.engine.dispose()


# -- seed ------------------------------------------------------------------------------------------
@dataclass
class Seed:
    db_kind: str
    teacher_token: str
    student_tokens: list
    student_ids: list
    sessions: dict  # label -> id
    secrets: dict  # id -> code secret


def student_body(i: int, code: str) -> dict:
    rnd = random.Random(i)
    if i % 20 == 19:  # one in twenty is far away (flagged, not refused)
        lat, lon = ROOM[0] + 0.01, ROOM[1] + 0.01
    else:
        lat, lon = ROOM[0] + rnd.uniform(-0.0004, 0.0004), ROOM[1] + rnd.uniform(-0.0005, 0.0005)
    return {"attendance_code": code, "latitude": round(lat, 6), "longitude": round(lon, 6),
            "accuracy_m": round(rnd.uniform(5, 60), 1), "device_id": f"device-{i:05d}-{rnd.getrandbits(32):08x}"}


def seed_database(app, args, labels: list[str]) -> Seed:
    from sqlalchemy import insert, select

    from attendance import codes
    from attendance.models import ClassSession, Course, Enrollment, User
    from extensions import db
    from lti.models import Deployment, Registration
    from lti.tokens import issue_launch_token

    with app.app_context():
        reg = Registration(issuer="https://lms.bench.invalid", client_id="bench-client", name="Bench LMS",
                           auth_login_url="https://lms.bench.invalid/auth", key_set_url="https://lms.bench.invalid/jwks")
        dep = Deployment(registration=reg, deployment_id="bench-deployment")
        db.session.add_all([reg, dep])
        db.session.flush()
        course = Course(registration_id=reg.id, deployment_id=dep.id, context_id="bench-course",
                        title="Bench 101", label="B101", timezone="UTC")
        teacher = User(registration_id=reg.id, sub="teacher-0", name="Teacher Bench", email="teacher@bench.invalid")
        db.session.add_all([course, teacher])
        db.session.flush()
        db.session.execute(insert(User), [
            {"registration_id": reg.id, "sub": f"student-{i:05d}", "name": f"Student {i:05d}",
             "email": f"s{i:05d}@bench.invalid"} for i in range(args.students)])
        student_ids = list(db.session.scalars(
            select(User.id).where(User.registration_id == reg.id, User.sub.like("student-%")).order_by(User.sub)))
        db.session.execute(insert(Enrollment), [
            {"course_id": course.id, "user_id": uid, "role": "student", "lti_roles": [], "source": "launch"}
            for uid in student_ids] + [
            {"course_id": course.id, "user_id": teacher.id, "role": "teacher", "lti_roles": [], "source": "launch"}])
        # Session ids far from 1: Redis pub/sub channels are global, other processes on this Redis use small ids.
        base = 9_000_000 + random.randrange(0, 90_000) * 10
        now = datetime.now(timezone.utc)
        sessions, session_secrets = {}, {}
        for k, label in enumerate(labels):
            secret = codes.new_secret()
            db.session.add(ClassSession(
                id=base + k, course_id=course.id, title=f"Bench lecture {label}", starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(hours=2), latitude=ROOM[0], longitude=ROOM[1], radius_m=ROOM[2],
                code_secret=secret, created_by_id=teacher.id))
            sessions[label], session_secrets[base + k] = base + k, secret
        db.session.commit()

        def token(user_id, role):
            return issue_launch_token({"registration": reg.id, "deployment": dep.id, "user": user_id,
                                       "course": course.id, "role": role, "admin": False})

        seed = Seed(db_kind=db.engine.dialect.name, teacher_token=token(teacher.id, "teacher"),
                    student_tokens=[token(uid, "student") for uid in student_ids], student_ids=student_ids,
                    sessions=sessions, secrets=session_secrets)
        db.session.remove()
    return seed


# -- phases ----------------------------------------------------------------------------------------
def tool_phase(label: str, session_label: str, server: Server, seed: Seed, students: range, args, bench_engine) -> Phase:
    from sqlalchemy import text

    from attendance import codes

    sid = seed.sessions[session_label]
    teacher = TeacherSocket(server.port, sid, seed.teacher_token)
    try:
        status, body = call(server.port, "POST", "/api/generate-code/", {"class_session_id": sid}, seed.teacher_token)
        if status != 200:
            raise RuntimeError(f"generate-code answered {status}: {body}")
        rotation, secret = body["rotation_seconds"], seed.secrets[sid]
        headers = [{"Content-Type": "application/json", "Authorization": f"Bearer {seed.student_tokens[i]}"}
                   for i in students]
        student_index = list(students)

        def build(k):
            code = codes.current_code(secret, datetime.now(timezone.utc), rotation).code  # the code on the screen now
            return "/api/submit-attendance/", headers[k], json.dumps(student_body(student_index[k], code))

        phase = Phase(label, "tool")
        window = CpuWindow(server, bench_engine)
        run_load(server.port, len(student_index), args.clients, build, phase, args.request_timeout)
        phase.cpu = window.stop()
        deadline = time.time() + args.straggler_wait
        while teacher.delivered(phase.acked_ids) < len(phase.acked_ids) and time.time() < deadline:
            time.sleep(0.1)
        phase.delivered = teacher.delivered(phase.acked_ids)
        with teacher.lock:
            phase.socket_extra = len(teacher.ids - phase.acked_ids)
        call(server.port, "POST", "/api/stop-checkin/", {"class_session_id": sid}, seed.teacher_token)
        with bench_engine.connect() as conn:
            ids = set(conn.scalars(text("SELECT id FROM attendance_record WHERE class_session_id = :s"), {"s": sid}))
        phase.stored, phase.stored_acked = len(ids), len(ids & phase.acked_ids)
        phase.rotation = rotation
        return phase
    finally:
        teacher.close()


def bare_phase(label: str, server: Server, seed: Seed, students: range, args, bench_engine) -> Phase:
    from bare_app import TABLE
    from sqlalchemy import text

    student_index = list(students)
    tag = f"bench-{label}"[:32]
    headers = [{"Content-Type": "application/json", "Authorization": f"Bearer {seed.student_tokens[i]}"}
               for i in student_index]

    def build(k):
        body = student_body(student_index[k], tag)
        body["student_id"] = seed.student_ids[student_index[k]]
        return "/submit/", headers[k], json.dumps(body)

    phase = Phase(label, "bare")
    window = CpuWindow(server, bench_engine)
    run_load(server.port, len(student_index), args.clients, build, phase, args.request_timeout)
    phase.cpu = window.stop()
    with bench_engine.connect() as conn:
        phase.stored = conn.scalar(text(f"SELECT count(*) FROM {TABLE} WHERE code = :t"), {"t": tag})
    return phase


# -- report ----------------------------------------------------------------------------------------
HEADER = (f"  {'run':<8} {'app':<5} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
          f" {'CPU ms per request:':>20} {'server':>7} {'postgres':>8} {'client':>7}")


def row(label, target, requests, errors, rps, p50, p99, cpu):
    return (f"  {label:<8} {target:<5} {requests:>8} {errors:>6} {rps:>8.1f} {p50:>8.1f} {p99:>8.1f}"
            f" {'':>20} {cpu[0]:>7.2f} {cpu[1]:>8.2f} {cpu[2]:>7.2f}")


def cpu_per_request(p: Phase) -> tuple:
    return tuple(v * 1000 / p.requests for v in p.cpu) if p.requests else (0.0, 0.0, 0.0)


def report(phases: list[Phase], args, seed: Seed, rotation_note: str) -> None:
    log(f"\nRESULTS ({args.clients} keep-alive clients; latency = request sent .. response read, client side; "
        f"CPU = user+system seconds of the gunicorn processes, of their PostgreSQL backends and of this client "
        f"process during the run, per request)")
    log(HEADER)
    for p in phases:
        log(row(p.label, p.target, p.requests, p.errors, p.rps, pct(p.latencies_ms, 50), pct(p.latencies_ms, 99),
                cpu_per_request(p)))
        if p.target == "tool":
            detail = (f"201: {p.ok}, reached the teacher socket: {p.delivered}, rows in attendance_record: {p.stored} "
                      f"(acknowledged and stored: {p.stored_acked})")
        else:
            detail = f"201: {p.ok}, rows in {'bench_bare_checkin'}: {p.stored}"
        if p.error_codes:
            detail += "; errors: " + ", ".join(f"{k} x{v}" for k, v in p.error_codes.most_common(4))
        log(f"  {'':<8} {'':<5} {detail}")
    measured = [p for p in phases if not p.label.startswith("warm")]
    medians = {}
    log("")
    for target in ("tool", "bare"):
        ps = [p for p in measured if p.target == target]
        cpus = [cpu_per_request(p) for p in ps]
        medians[target] = statistics.median(p.rps for p in ps)
        log(row("median", target, sum(p.requests for p in ps), sum(p.errors for p in ps), medians[target],
                statistics.median(pct(p.latencies_ms, 50) for p in ps), statistics.median(pct(p.latencies_ms, 99) for p in ps),
                tuple(statistics.median(c[k] for c in cpus) for k in range(3))))
    log(f"  (medians of {len(measured) // 2} runs each; requests and errors are totals)")
    ratio = medians["tool"] / medians["bare"] if medians["bare"] else float("nan")
    log(f"\n  throughput ratio tool/bare (median req/s): {ratio:.2f}   goal >= 0.70: {'MET' if ratio >= 0.7 else 'NOT MET'}")
    cpu = {t: statistics.median(sum(cpu_per_request(p)) for p in measured if p.target == t) for t in ("tool", "bare")}
    log(f"  cross-check, less sensitive to other load on the machine: CPU per request (server + postgres + client) "
        f"tool {cpu['tool']:.2f} ms, bare {cpu['bare']:.2f} ms; when the cores are the bottleneck, req/s ratio ~ "
        f"bare/tool CPU = {cpu['bare'] / cpu['tool']:.2f}" if cpu["tool"] else "")
    tools = [p for p in measured if p.target == "tool"]
    acked = sum(p.ok for p in tools)
    delivered = sum(p.delivered or 0 for p in tools)
    stored = sum(p.stored_acked or 0 for p in tools)
    rows = sum(p.stored or 0 for p in tools)
    log(f"  check-ins acknowledged (201): {acked} of {sum(p.requests for p in tools)}; reached the teacher socket: "
        f"{delivered} ({'all' if delivered == acked else f'{acked - delivered} MISSING'}, waited up to "
        f"{args.straggler_wait:g} s for stragglers); rows in attendance_record: {rows}; every acknowledged check-in "
        f"stored: {'yes' if stored == acked else f'NO ({acked - stored} missing)'}")
    extra = sum(p.socket_extra for p in tools)
    if extra:
        log(f"  the socket also got {extra} submission(s) that no client saw acknowledged")
    log(f"  {rotation_note}")


# -- main ------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL server URL (a scratch database is created next to this one and dropped), "
                             "or 'sqlite' / sqlite:///file")
    parser.add_argument("--in-place", action="store_true", help="use the database of --database-url itself "
                        "(must be empty; its tables are dropped at the end) instead of a scratch database")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=200, help="requests per app before measuring")
    parser.add_argument("--rotation", type=int, default=None,
                        help="CODE_ROTATION_SECONDS for the servers (default: the tool's default, 15 s)")
    parser.add_argument("--profile", type=int, default=200, help="serial in-process check-ins to profile (0: skip)")
    parser.add_argument("--profile-lines", type=int, default=20)
    parser.add_argument("--straggler-wait", type=float, default=5.0, help="seconds to wait for socket messages")
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--time-limit", type=int, default=280, help="abort (and clean up) after this many seconds")
    args = parser.parse_args()
    if args.students < 3 + 2 * max(args.profile, 0) or args.students < args.warmup:
        parser.error("--students must be at least --warmup and 2 x --profile + 3")

    def on_alarm(_signum, _frame):
        raise TimeLimit(f"time limit of {args.time_limit} s reached")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.time_limit)
    t0 = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="checkin_bench_"))
    database = None
    servers: list[Server] = []
    bench_engine = None
    app = None
    try:
        database = ScratchDatabase(args.database_url, tmp, args.in_place)
        env = {k: v for k, v in os.environ.items() if k not in ("FLASK_APP", "TOOL_BASE_URL")}
        env.update(DATABASE_URL=database.url, BARE_DATABASE_URL=database.url, REDIS_URL=args.redis_url,
                   SECRET_KEY=secrets.token_urlsafe(32), KEYS_DIR=str(tmp / "keys"), INSTANCE_PATH=str(tmp / "instance"),
                   AUTO_MIGRATE="0", PYTHONUNBUFFERED="1")
        if args.rotation:
            env["CODE_ROTATION_SECONDS"] = str(args.rotation)
        else:
            env.pop("CODE_ROTATION_SECONDS", None)
        os.environ.clear()
        os.environ.update(env, AUTO_MIGRATE="1")  # this process migrates the scratch database, the servers do not
        from bare_app import database_url as bare_url
        from bare_app import metadata as bare_metadata
        from sqlalchemy import create_engine

        from app import create_app

        bench_engine = create_engine(bare_url())
        if args.in_place:
            database.check_empty(bench_engine)
        started = time.time()
        app = create_app()  # AUTO_MIGRATE=1: the tool's Alembic migrations build the schema
        os.environ["AUTO_MIGRATE"] = "0"
        schema_note = "Alembic migrations (create_app with AUTO_MIGRATE)"
        drift = schema_drift(app)
        if drift:
            schema_note = (f"db.create_all: the migrations lag the models ({'; '.join(drift[:4])}"
                           f"{'...' if len(drift) > 4 else ''}), so the schema was rebuilt from the models")
            rebuild_schema(app)
        bare_metadata.create_all(bench_engine)
        labels = ["warmup", *(f"rep{k}" for k in range(1, args.repeats + 1)), "count"]
        seed = seed_database(app, args, labels)
        db_version = bench_engine.dialect.name
        with bench_engine.connect() as conn:
            from sqlalchemy import text

            if db_version == "postgresql":
                db_version = conn.scalar(text("SHOW server_version")).split()[0]
                db_version = f"PostgreSQL {db_version}"
            else:
                db_version = f"SQLite {conn.scalar(text('select sqlite_version()'))}"
        log(f"CHECK-IN BURST  {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC   {os.cpu_count()} CPU cores, "
            f"load average before start {os.getloadavg()[0]:.2f}")
        log(f"  database: {db_version} ({'scratch database ' + database.created if database.created else database.url}), "
            f"Redis {args.redis_url}")
        log(f"  schema: {schema_note}")
        log(f"  setup (schema + {args.students} students, enrollments, {len(labels)} sessions, "
            f"{args.students + 1} tokens): {time.time() - started:.1f} s")

        in_process_figures(app, seed, args)

        def tagged(url: str, name: str) -> str:  # lets the bench find each server's PostgreSQL backends
            return url if database.kind == "sqlite" else f"{url}{'&' if '?' in url else '?'}application_name={name}"

        tool = Server("tool", "app:create_app()", ROOT,
                      dict(env, DATABASE_URL=tagged(database.url, "checkin_bench_tool")), args, tmp, "/lti/jwks")
        servers.append(tool)
        bare = Server("bare", "bare_app:create_app()", BENCH,
                      dict(env, BARE_DATABASE_URL=tagged(database.url, "checkin_bench_bare")), args, tmp, "/health")
        servers.append(bare)
        tool.wait_ready()
        bare.wait_ready()
        log(f"\nSERVERS: gunicorn {args.workers} workers x {args.threads} threads (gthread) each, loopback; "
            f"tool on :{tool.port} (REDIS_URL set, AUTO_MIGRATE=0), bare on :{bare.port}")
        log(f"  clients: {args.clients} threads in this process, one keep-alive http.client connection each; "
            f"{args.students} requests per run (each student once per class session); "
            f"{args.warmup} warm-up requests per app")

        phases: list[Phase] = []
        phases.append(tool_phase("warm-up", "warmup", tool, seed, range(args.warmup), args, bench_engine))
        phases.append(bare_phase("warm-up", bare, seed, range(args.warmup), args, bench_engine))
        for k in range(1, args.repeats + 1):
            order = ("tool", "bare") if k % 2 else ("bare", "tool")
            for target in order:
                if target == "tool":
                    phase = tool_phase(f"run {k}", f"rep{k}", tool, seed, range(args.students), args, bench_engine)
                else:
                    phase = bare_phase(f"run {k}", bare, seed, range(args.students), args, bench_engine)
                phases.append(phase)
                log(f"  {phase.label} {phase.target}: {phase.rps:.0f} req/s, {phase.errors} errors "
                    f"(load average now {os.getloadavg()[0]:.2f})")
        rotation = phases[0].rotation
        note = (f"codes rotate every {rotation} s ({'CODE_ROTATION_SECONDS=' + str(args.rotation) + ' in the servers environment' if args.rotation else 'the tool default'}); "
                "each request carries the code valid when it is sent (HMAC of the session secret, as the projector shows it)")
        report(phases, args, seed, note)
        log(f"\n  total time {time.time() - t0:.0f} s (time limit {args.time_limit} s)")
    except BaseException:
        for server in servers:  # the servers' own words are the first thing to read when a run fails
            try:
                log(f"--- last lines of the {server.name} server's log ---\n{server.tail()[-2000:]}")
            except Exception:  # noqa: BLE001
                pass
        raise
    finally:
        signal.alarm(0)
        for server in servers:
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - keep cleaning up
                log(f"stopping {server.name}: {exc!r}")
        if app is not None:
            try:
                from extensions import db

                with app.app_context():
                    db.session.remove()
                    db.engine.dispose()
            except Exception as exc:  # noqa: BLE001
                log(f"disposing the in-process engine: {exc!r}")
        if bench_engine is not None:
            try:
                from bare_app import metadata as bare_metadata

                bare_metadata.drop_all(bench_engine)
            except Exception as exc:  # noqa: BLE001
                log(f"dropping the bare table: {exc!r}")
            bench_engine.dispose()
        if database is not None:
            try:
                from sqlalchemy import create_engine

                database.drop(lambda: create_engine(database.url.replace("postgresql://", "postgresql+psycopg://", 1)))
            except Exception as exc:  # noqa: BLE001
                log(f"dropping the scratch database: {exc!r}")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except TimeLimit as exc:
        print(f"ABORTED: {exc} (servers stopped, scratch data dropped)", file=sys.stderr)
        sys.exit(2)
