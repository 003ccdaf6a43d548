"""The guarded outbound client, attacked as a malicious platform would (issue 7).

Every server here listens on the loopback range (127.0.0.1, and 127.0.0.2 as the "internal" host
outside the allow-list); private, link-local and metadata addresses are only put to the guard's
decision function, never connected to.
"""
from __future__ import annotations

import gc
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from werkzeug.wrappers import Response

import config
from attendance.lms.client import service_client
from extensions import db
from lti.models import Registration
from lti.outbound import OutboundClient, OutboundError, address_allowed, check_platform_url, parse_networks
from lti.services import ServiceError
from tests.support.launch import Launcher, register_platform
from tests.support.lms_services import SCOPE_NRPS, SCOPE_SCORE, LmsServices
from tests.support.platform import Platform

ALLOW = "127.0.0.1/32"
INTERNAL = "127.0.0.2"  # a host of the tool's own network: outside the allow-list


class Server:
    """A loopback HTTP server that counts every connection made to it and runs `handler` per request."""

    def __init__(self, host: str = "127.0.0.1", handler=None):
        outer = self
        self.connections = 0
        self.requests: list[tuple[str, str, dict]] = []
        self.handler = handler or (lambda h: send_json(h, {"ok": True}))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append((self.command, self.path, dict(self.headers)))
                try:
                    outer.handler(self)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_POST = do_GET

        class Counting(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request, client_address):
                outer.connections += 1
                return True

        self.httpd = Counting((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def send_json(handler, body, status=200, headers=None):
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


@pytest.fixture
def servers():
    started = []

    def start(host="127.0.0.1", handler=None):
        server = Server(host, handler)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# -- the decision, without connecting -----------------------------------------------------------------
REFUSED = ["10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
           "224.0.0.1", "240.0.0.1", "127.0.0.1", "::1", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::",
           "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a00:1", "64:ff9b::a9fe:a9fe",
           "2002:a00:1::1", "fec0::1", "198.18.0.1"]


@pytest.mark.parametrize("ip", REFUSED)
def test_internal_addresses_are_refused(ip):
    assert address_allowed(ip, ()) is False


@pytest.mark.parametrize("ip", ["93.184.216.34", "2606:4700::1", "::ffff:93.184.216.34", "64:ff9b::5db8:d822"])
def test_public_addresses_are_allowed(ip):
    assert address_allowed(ip, ()) is True


@pytest.mark.parametrize("ip, networks, allowed", [
    ("10.0.0.1", "10.0.0.0/8", True),  # an on-premises LMS the operator allowed
    ("10.0.0.1", "10.1.0.0/16", False),
    ("::ffff:10.0.0.1", "10.0.0.0/8", True),  # the same host through an IPv6 socket
    ("64:ff9b::a00:1", "10.0.0.0/8", True),
    ("127.0.0.1", ALLOW, True),
    ("127.0.0.2", ALLOW, False),
    ("169.254.169.254", "10.0.0.0/8, 127.0.0.1/32", False),
    ("fd00::5", "fd00::/8", True),
    ("fd00::5", "10.0.0.0/8", False),
])
def test_the_allow_list_overrides_only_its_own_networks(ip, networks, allowed):
    assert address_allowed(ip, networks) is allowed
    assert address_allowed(ip, parse_networks(networks)) is allowed


@pytest.mark.parametrize("url, reason", [
    ("javascript:alert(document.domain)", "only https URLs are accepted"),
    ("data:text/html,<script>alert(1)</script>", "only https URLs are accepted"),
    ("ftp://lms.example.edu/config", "only https URLs are accepted"),
    ("file:///etc/passwd", "only https URLs are accepted"),
    ("http://93.184.216.34/mod/lti/token.php", "plain http refused"),  # public, but not allowed by the operator
    (f"http://{INTERNAL}:8080/jwks", "address not allowed"),
    ("https://admin:secret@lms.example.edu/jwks", "credentials in the URL are not accepted"),
    ("https://lms.example.edu@169.254.169.254/latest", "credentials in the URL are not accepted"),
    ("https:///mod/lti/certs.php", "the URL has no host"),
    ("https://lms.example.edu/a b", "not a URL"),
    ("https://[::1/x", "not a URL"),
    ("", "not a URL"),
])
def test_platform_urls_are_checked_before_they_are_stored(url, reason):
    with pytest.raises(OutboundError) as caught:
        check_platform_url(url, ALLOW)
    assert caught.value.reason == reason


def test_resolving_check_refuses_internal_literals_and_accepts_good_urls():
    with pytest.raises(OutboundError) as caught:
        check_platform_url("https://169.254.169.254/latest/meta-data", ALLOW, resolve=True)
    assert caught.value.reason == "address not allowed"
    assert check_platform_url("https://lms.example.edu/mod/lti/certs.php", ALLOW) == \
        "https://lms.example.edu/mod/lti/certs.php"  # https is fine without resolving
    assert check_platform_url("http://127.0.0.1:8080/certs", ALLOW, resolve=True)
    assert check_platform_url("https://93.184.216.34/certs", ALLOW, resolve=True)  # decided, never connected


def test_a_bad_allow_list_stops_the_start(tmp_path, monkeypatch):
    monkeypatch.setenv("OUTBOUND_ALLOW_NETWORKS", "10.0.0.0/8, 10.0.0.0/33")
    with pytest.raises(RuntimeError, match="OUTBOUND_ALLOW_NETWORKS"):
        config.load(tmp_path, {"SECRET_KEY": "x"})
    monkeypatch.setenv("OUTBOUND_ALLOW_NETWORKS", "10.0.0.0/8, 127.0.0.1")
    assert config.load(tmp_path, {"SECRET_KEY": "x"})["OUTBOUND_ALLOW_NETWORKS"] == ["10.0.0.0/8", "127.0.0.1/32"]
    monkeypatch.delenv("OUTBOUND_ALLOW_NETWORKS")
    assert config.load(tmp_path, {"SECRET_KEY": "x"})["OUTBOUND_ALLOW_NETWORKS"] == []


# -- a malicious platform pointing the tool inward ----------------------------------------------------
def test_a_server_outside_the_allow_list_is_refused_without_connecting(app, servers):
    internal = servers(INTERNAL)
    with pytest.raises(OutboundError) as caught:
        app.extensions["lti_outbound"].get(internal.url + "/admin")
    assert caught.value.reason == "address not allowed"
    assert internal.connections == 0 and internal.requests == []
    # The same server is reachable by a client that allows it: the refusal above was the guard's.
    assert OutboundClient("127.0.0.0/8").get(internal.url + "/admin").json() == {"ok": True}
    assert internal.connections == 1


def test_a_platform_whose_key_set_is_internal_gets_no_launch_and_no_request(app, launcher, servers):
    internal = servers(INTERNAL, lambda h: send_json(h, {"keys": []}))
    platform = Platform(product="moodle")
    try:
        with app.app_context():
            register_platform(app, platform)
            row = db.session.scalar(db.select(Registration).filter_by(issuer=platform.issuer))
            row.key_set_url = internal.url + "/jwks"
            db.session.commit()
        response = launcher.launch(platform)
        assert response.status_code == 502
        assert "address not allowed" in response.get_data(as_text=True)
        assert internal.connections == 0
    finally:
        platform.stop()


def test_a_redirect_inward_is_refused(app, servers):
    internal = servers(INTERNAL)
    outside = servers(handler=lambda h: (h.send_response(302), h.send_header("Location", internal.url + "/secret"),
                                         h.send_header("Content-Length", "0"), h.end_headers()))
    with pytest.raises(OutboundError) as caught:
        app.extensions["lti_outbound"].get(outside.url + "/jwks")
    assert caught.value.reason == "redirect refused"
    assert len(outside.requests) == 1 and internal.connections == 0


def test_a_name_is_resolved_once_and_every_address_checked(servers, monkeypatch):
    good, internal = servers(), servers(INTERNAL)
    answers = {"platform.test": ["127.0.0.1"], "mixed.test": ["127.0.0.1", INTERNAL]}
    lookups = []

    def fake_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        lookups.append(host)
        addresses = answers[host]
        if host == "platform.test" and len(lookups) > 1:  # a rebinding resolver: the next answer points inward
            addresses = [INTERNAL]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    client = OutboundClient(ALLOW, timeout=5)
    assert client.get(f"http://platform.test:{good.port}/jwks").json() == {"ok": True}
    assert lookups == ["platform.test"]  # resolved once; the connection went to the address that was checked
    assert good.requests[0][2]["Host"] == f"platform.test:{good.port}"  # the name is kept for Host (and SNI)
    with pytest.raises(OutboundError) as caught:
        client.get(f"http://mixed.test:{good.port}/jwks")
    assert caught.value.reason == "address not allowed"
    assert len(good.requests) == 1 and internal.connections == 0


# -- limits ------------------------------------------------------------------------------------------
def _zeros(total: int, declared: bool):
    def handler(h):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        if declared:
            h.send_header("Content-Length", str(total))
        else:
            h.send_header("Connection", "close")
        h.end_headers()
        block, sent = b"0" * 65536, 0
        while sent < total:
            h.wfile.write(block)
            sent += len(block)
        h.close_connection = True
    return handler


@pytest.mark.parametrize("declared", [False, True], ids=["streamed", "declared"])
def test_a_300_mb_answer_is_cut_at_the_cap_with_memory_bounded(servers, declared):
    huge = servers(handler=_zeros(300 * 1024 * 1024, declared))
    client = OutboundClient(ALLOW, timeout=5, max_bytes=2 * 1024 * 1024)
    gc.collect()
    before, started = rss_kb(), time.monotonic()
    with pytest.raises(OutboundError) as caught:
        client.get(huge.url + "/jwks")
    elapsed = time.monotonic() - started
    assert caught.value.reason == "answer too large"
    assert elapsed < 5
    assert rss_kb() - before < 50 * 1024, "reading the answer grew the process by more than 50 MB"


def _drip(headers_first: bool):
    def handler(h):
        if headers_first:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", "100")
            h.end_headers()
            h.wfile.flush()
        else:  # the status line, then the headers a byte at a time
            h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(100):
            h.wfile.write(b" " if headers_first else b"X")
            h.wfile.flush()
            time.sleep(0.5)
    return handler


@pytest.mark.parametrize("headers_first", [True, False], ids=["body", "headers"])
def test_a_drip_fed_answer_fails_by_the_deadline(servers, headers_first):
    slow = servers(handler=_drip(headers_first))
    client = OutboundClient(ALLOW, timeout=2)
    started = time.monotonic()
    with pytest.raises(OutboundError) as caught:
        client.get(slow.url + "/jwks")
    elapsed = time.monotonic() - started
    assert caught.value.reason == "deadline exceeded"
    assert 1.9 <= elapsed < 3.0, elapsed


def test_calls_beyond_the_concurrency_cap_wait_within_their_deadline(servers):
    slow = servers(handler=lambda h: (time.sleep(2), send_json(h, {"ok": True})))
    client = OutboundClient(ALLOW, timeout=5, max_concurrency=1)
    first = threading.Thread(target=client.get, args=(slow.url + "/a",))
    first.start()
    while not slow.requests:
        time.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(OutboundError) as caught:
        client.get(slow.url + "/b", timeout=0.5)
    assert caught.value.reason == "too many calls at once"
    assert time.monotonic() - started < 1.5
    first.join()
    assert client.get(slow.url + "/c").json() == {"ok": True}  # the slot came back


def test_answers_are_read_as_platforms_send_them(servers):
    server = servers(handler=lambda h: send_json(h, {"members": []}, headers={
        "Link": '<http://127.0.0.1/m?cursor=Pg2>; rel="next"'}))
    response = OutboundClient(ALLOW).get(server.url + "/m")
    assert (response.status_code, response.ok, response.json()) == (200, True, {"members": []})
    assert response.links["next"]["url"] == "http://127.0.0.1/m?cursor=Pg2"
    assert server.requests[0][2]["User-Agent"].startswith("lti-attendance/")
    failing = servers(handler=lambda h: send_json(h, {"error": "redis version 7.2 token=s3cr3t"}, status=503))
    response = OutboundClient(ALLOW).get(failing.url + "/x")
    with pytest.raises(OutboundError) as caught:
        response.raise_for_status()
    assert (caught.value.reason, caught.value.status, caught.value.transient) == ("HTTP 503", 503, True)
    assert "s3cr3t" not in str(caught.value) and "s3cr3t" in caught.value.detail


# -- one slow platform does not hold up another -------------------------------------------------------
def test_a_slow_key_set_does_not_delay_another_platforms_launch(app):
    fast = Platform(product="moodle")
    slow = Platform(product="moodle", client_id="slow-client")
    serve_keys = lambda request: (time.sleep(5),  # noqa: E731
                                  Response(json.dumps({"keys": slow.published}), mimetype="application/json"))[1]
    slow.handlers["/jwks"] = serve_keys
    try:
        register_platform(app, fast)
        register_platform(app, slow)
        results = {}

        def launch_slow(name):
            results[name] = Launcher(app.test_client()).launch(slow).status_code

        threads = [threading.Thread(target=launch_slow, args=(n,)) for n in ("slow-1", "slow-2")]
        threads[0].start()
        deadline = time.monotonic() + 5
        while not slow.requests_to("/jwks") and time.monotonic() < deadline:
            time.sleep(0.01)
        threads[1].start()  # a second launch of the slow platform joins the fetch in flight
        started = time.monotonic()
        fast_status = Launcher(app.test_client()).launch(fast).status_code
        fast_seconds = time.monotonic() - started
        for thread in threads:
            thread.join(15)
        assert fast_status == 200
        assert fast_seconds < 2, f"another platform's launch took {fast_seconds:.1f} s behind a slow key set"
        assert results == {"slow-1": 200, "slow-2": 200}
        assert len(slow.requests_to("/jwks")) == 1  # single flight: one fetch served both launches
    finally:
        fast.stop()
        slow.stop()


# -- services stay on the platform's hosts ------------------------------------------------------------
@pytest.fixture
def lms(app, moodle):
    return LmsServices(moodle, tool_jwks=lambda: app.extensions["lti_keys"].jwks())


def _client(app, issuer, **changes):
    row = db.session.scalar(db.select(Registration).filter_by(issuer=issuer))
    for key, value in changes.items():
        setattr(row, key, value)
    db.session.commit()
    return service_client(row)


def test_service_urls_on_a_foreign_host_are_refused_before_anything_is_sent(app, lms):
    foreign = Platform(product="moodle")  # another LMS (or an internal service) on another port
    try:
        with app.app_context():
            client = _client(app, lms.platform.issuer)
            attempts = {
                "line items": lambda: client.find_line_items(foreign.url + "/lineitems", scopes=(SCOPE_SCORE,)),
                "score": lambda: client.post_score(foreign.url + "/lineitems/1", {"userId": "s0"}, (SCOPE_SCORE,)),
                "roster": lambda: list(client.memberships(foreign.url + "/memberships", (SCOPE_NRPS,))),
            }
            for name, attempt in attempts.items():
                with pytest.raises(ServiceError) as caught:
                    attempt()
                assert "another host" in caught.value.message, name
                assert not caught.value.transient
            assert foreign.requests == []
            assert lms.token_requests == []  # not even a token was asked for
            # The platform's own host works, and so does a host its registration lists (Canvas Cloud).
            lms.add_member("m0")
            assert [m["user_id"] for m in client.memberships(lms.memberships_url, (SCOPE_NRPS,))] == ["m0"]
            listed = _client(app, lms.platform.issuer, service_hosts=[f"127.0.0.1:{foreign.port}"])
            with pytest.raises(ServiceError) as caught:
                list(listed.memberships(foreign.url + "/memberships", (SCOPE_NRPS,)))
            assert caught.value.status == 404  # it was called this time
            assert len(foreign.requests) == 1
    finally:
        foreign.stop()


def _assertion_audience(lms) -> str:
    return jwt.decode(lms.token_requests[-1]["client_assertion"], options={"verify_signature": False})["aud"]


def test_an_authorization_server_on_another_host_is_not_used_as_audience(app, lms):
    victim = Platform(product="moodle")  # another school's LMS: the tool must not sign an assertion for it
    try:
        with app.app_context():
            client = _client(app, lms.platform.issuer, auth_audience=victim.token_url)
            client.token((SCOPE_NRPS,))
            assert _assertion_audience(lms) == lms.platform.token_url
            assert victim.requests == []
            same_host = lms.platform.url + "/oauth2/audience"
            client = _client(app, lms.platform.issuer, auth_audience=same_host)
            with pytest.raises(ServiceError):  # this test LMS expects its token URL; the audience was still sent
                client.token((SCOPE_SCORE,))
            assert _assertion_audience(lms) == same_host
    finally:
        victim.stop()
