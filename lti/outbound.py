"""The one guarded HTTP client for every call the tool makes to a platform.

A platform (or whoever registered as one) chooses the URLs the tool calls: key sets, tokens, AGS,
NRPS, registration. So every call here resolves the host, refuses loopback, private, link-local,
multicast and reserved addresses (unless the operator allowed their network in
`OUTBOUND_ALLOW_NETWORKS`), connects to the very address it checked (no DNS-rebinding window),
never follows a redirect, stops at an overall deadline however slowly the answer trickles in,
reads at most a byte cap, and runs at most a bounded number of calls at once per process.

Failures are `OutboundError`s: `reason` is a short fixed phrase safe to show a user; `detail`
(the remote body, exception text) goes to the log only.
"""
from __future__ import annotations

import heapq
import ipaddress
import itertools
import json as jsonlib
import logging
import os
import socket
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Iterable
from urllib.parse import urlencode, urlsplit

import certifi
import urllib3
from requests.utils import parse_header_links
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util.connection import _set_socket_options

log = logging.getLogger(__name__)

USER_AGENT = "lti-attendance/0.1 (+LTI 1.3 tool)"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_CONCURRENCY = 16
CHUNK = 64 * 1024
MAX_URL_LENGTH = 2048

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Never reachable on a platform's behalf, whatever the ipaddress module of this Python thinks is global.
_REFUSED = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "2001::/32", "2001:db8::/32",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Reasons worth another try later; every other one will fail the same way until someone fixes a URL.
TRANSIENT_REASONS = frozenset({"deadline exceeded", "connection failed", "name not resolved", "too many calls at once"})


class OutboundError(Exception):
    """A call to a platform was refused or failed: `reason` may be shown, `detail` only logged."""

    def __init__(self, reason: str, detail: str = "", *, status: int | None = None):
        super().__init__(reason)
        self.reason, self.detail, self.status = reason, detail, status

    def __str__(self) -> str:
        return self.reason

    @property
    def transient(self) -> bool:
        """Worth retrying later: no answer in time, or the platform throttled or failed."""
        if self.status is not None:
            return self.status == 429 or self.status >= 500
        return self.reason in TRANSIENT_REASONS


# -- the decision --------------------------------------------------------------------------------
def parse_networks(value: str | Iterable | None) -> tuple[Network, ...]:
    """Parse CIDRs (a comma-separated string or an iterable); raise ValueError naming a bad one."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    networks = []
    for item in items:
        if isinstance(item, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            networks.append(item)
            continue
        text = str(item).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a CIDR network (e.g. 10.20.0.0/16 or 127.0.0.1/32)") from exc
    return tuple(networks)


def _address(ip) -> Address:
    if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ip
    return ipaddress.ip_address(str(ip).split("%", 1)[0].strip("[]"))


def _listed(ip: Address, networks: tuple[Network, ...]) -> bool:
    return any(ip.version == n.version and ip in n for n in networks)


def _public(ip: Address) -> bool:
    if any(ip.version == n.version and ip in n for n in _REFUSED):
        return False
    if ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved \
            or ip.is_unspecified or not ip.is_global:
        return False
    return not (ip.version == 6 and ip.is_site_local)


def address_allowed(ip, allow_networks=()) -> bool:
    """Decide whether the tool may connect to ip: public addresses, or any inside allow_networks."""
    address = _address(ip)
    networks = parse_networks(allow_networks)
    if address.version == 6:
        if address.ipv4_mapped is not None:  # the same IPv4 host, reached through an IPv6 socket
            return address_allowed(address.ipv4_mapped, networks)
        if address in _NAT64:  # DNS64 on an IPv6-only host: the target is the embedded IPv4 address
            return _listed(address, networks) or address_allowed(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),
                                                                  networks)
        if address.sixtofour is not None and not address_allowed(address.sixtofour, networks):
            return _listed(address, networks)
    return _listed(address, networks) or _public(address)


def url_host(url: str) -> str:
    """Return the lowercase host of url with its port when not the scheme's default ("" without a host)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    if not host:
        return ""
    if ":" in host:
        host = f"[{host}]"
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    return f"{host}:{port}" if port and port != default else host


def _ip_literal(host: str) -> Address | None:
    try:
        return _address(host)
    except ValueError:
        return None


def _new_resolver() -> None:
    global _resolver
    _resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="outbound-dns")


_new_resolver()
os.register_at_fork(after_in_child=_new_resolver)  # a forked worker inherits the pool but not its threads


def _resolve(host: str, port: int, deadline: float) -> list[tuple[int, tuple]]:
    """Resolve host to every (family, sockaddr) within the deadline."""
    literal = _ip_literal(host)
    if literal is not None:
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return [(family, (str(literal), port, 0, 0) if literal.version == 6 else (str(literal), port))]
    try:
        host.encode("idna")
    except UnicodeError as exc:
        raise OutboundError("name not resolved", f"{host!r}: {exc}") from exc
    future = _resolver.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout as exc:
        raise OutboundError("deadline exceeded", f"resolving {host}") from exc
    except (OSError, UnicodeError) as exc:
        raise OutboundError("name not resolved", f"{host}: {exc}") from exc
    seen, found = set(), []
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr not in seen:
            seen.add(sockaddr)
            found.append((family, sockaddr))
    if not found:
        raise OutboundError("name not resolved", host)
    return found


def vet(host: str, port: int, allow_networks, *, plain_http: bool, deadline: float) -> list[tuple[int, tuple]]:
    """Resolve host and check EVERY address; answer the addresses to connect to, or raise OutboundError."""
    networks = parse_networks(allow_networks)
    addresses = _resolve(host, port, deadline)
    for _family, sockaddr in addresses:
        ip = _address(sockaddr[0])
        if not address_allowed(ip, networks):
            raise OutboundError("address not allowed", f"{host} resolves to {ip}")
        if plain_http and not (_listed(ip, networks) or (ip.version == 6 and ip.ipv4_mapped is not None
                                                          and _listed(ip.ipv4_mapped, networks))):
            raise OutboundError("plain http refused",
                                f"http://{host} resolves to {ip}, outside OUTBOUND_ALLOW_NETWORKS")
    return addresses


def check_platform_url(url: str, allow_networks=(), *, resolve: bool = False) -> str:
    """Check a URL a platform gave for storing and calling later; answer it or raise OutboundError.

    Only https, or plain http to addresses inside allow_networks (a host name given with http is
    resolved to decide); no credentials, a host present. With resolve, an https host is resolved
    too and every address must be allowed.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise OutboundError("not a URL", repr(url)[:200])
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise OutboundError("not a URL", "control character or space in the URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundError("not a URL", str(exc)) from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise OutboundError("only https URLs are accepted", f"scheme {scheme!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise OutboundError("credentials in the URL are not accepted")
    host = parts.hostname
    if not host:
        raise OutboundError("the URL has no host")
    port = port or (443 if scheme == "https" else 80)
    if scheme == "http" or resolve:
        deadline = time.monotonic() + DEFAULT_TIMEOUT
        vet(host, port, allow_networks, plain_http=scheme == "http", deadline=deadline)
    return url


# -- the deadline ---------------------------------------------------------------------------------
class _Alarm:
    def __init__(self, callback):
        self._lock = threading.Lock()
        self._callback = callback
        self.cancelled = self.fired = False

    def fire(self) -> None:
        with self._lock:
            if self.cancelled:
                return
            self.fired = True
            try:
                self._callback()
            except Exception:  # noqa: BLE001 - the watchdog thread must outlive any socket's oddities
                log.exception("outbound deadline callback failed")

    def cancel(self) -> bool:
        """Stop the alarm; answer whether it had already fired."""
        with self._lock:
            self.cancelled = True
            return self.fired


class _Watchdog:
    """One thread per process that cuts the socket of a call whose deadline passed.

    Socket timeouts bound each read, not the call: a body sent a byte at a time would never time out.
    """

    def __init__(self):
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._heap: list = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, callback) -> _Alarm:
        alarm = _Alarm(callback)
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._seq), alarm))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="outbound-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()
        return alarm

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        alarm = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
            alarm.fire()


_WATCHDOG = _Watchdog()
_local = threading.local()


class _Call:
    """The call in progress on this thread: its deadline and the connection it uses."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.conn: HTTPConnection | None = None

    def cut(self) -> None:
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            try:  # shutdown, not close: the reading thread still owns the descriptor
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


# -- connections to vetted addresses --------------------------------------------------------------
class _GuardedConnection:
    """Connects only to addresses `vet` accepted; Host, SNI and the certificate check keep the name."""

    allow_networks: tuple[Network, ...] = ()
    plain_http = True

    def _new_conn(self) -> socket.socket:
        call = getattr(_local, "call", None)
        if call is not None:
            call.conn = self
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else DEFAULT_TIMEOUT
        deadline = call.deadline if call is not None else time.monotonic() + timeout
        addresses = vet(self._dns_host, self.port, self.allow_networks, plain_http=self.plain_http, deadline=deadline)
        error: OSError | None = None
        for family, sockaddr in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                _set_socket_options(sock, self.socket_options)
                sock.settimeout(max(0.01, min(timeout, deadline - time.monotonic())))
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                error = exc
                sock.close()
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")

    def request(self, *args, **kwargs):
        call = getattr(_local, "call", None)
        if call is not None:
            call.conn = self
        return super().request(*args, **kwargs)


class _GuardedHTTPConnection(_GuardedConnection, HTTPConnection):
    plain_http = True


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    plain_http = False


# -- answers --------------------------------------------------------------------------------------
class OutboundResponse:
    """A platform's whole answer, already read within the byte cap."""

    def __init__(self, method: str, url: str, status_code: int, headers, content: bytes):
        self.method, self.url, self.status_code, self.headers, self.content = method, url, status_code, headers, content

    @property
    def ok(self) -> bool:
        """Tell whether the status is below 400."""
        return self.status_code < 400

    @property
    def text(self) -> str:
        """Decode the body with its declared charset (UTF-8 by default), replacing what does not decode."""
        charset = "utf-8"
        for part in self.headers.get("Content-Type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self):
        """Parse the body as JSON; raise OutboundError("not JSON") when it is not."""
        try:
            return jsonlib.loads(self.content)
        except (ValueError, RecursionError) as exc:
            raise OutboundError("not JSON", f"{self.method} {self.url}: {exc}; body {self.text[:500]!r}",
                                status=None) from None

    @property
    def links(self) -> dict[str, dict]:
        """Return the Link header's links by rel (or URL), as requests presents them."""
        header = self.headers.get("Link")
        if not header:
            return {}
        links = {}
        for link in parse_header_links(header):
            links[link.get("rel") or link.get("url")] = link
        return links

    def raise_for_status(self) -> "OutboundResponse":
        """Raise OutboundError("HTTP <status>") for a 4xx or 5xx answer; its body goes to the detail."""
        if not self.ok:
            log.warning("outbound %s %s answered %s: %s", self.method, _loggable(self.url), self.status_code,
                        self.text[:500])
            raise OutboundError(f"HTTP {self.status_code}", self.text[:2000], status=self.status_code)
        return self


def _decoder(encoding: str):
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise OutboundError("unsupported answer encoding", encoding)


# -- the client -----------------------------------------------------------------------------------
class OutboundClient:
    """Calls to platforms through the guard: allow-list, deadline, byte cap, no redirects, bounded concurrency."""

    def __init__(self, allow_networks=(), *, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY, user_agent: str = USER_AGENT, pool_size: int = 32):
        self.allow_networks = parse_networks(allow_networks)
        self.timeout, self.max_bytes, self.user_agent = float(timeout), int(max_bytes), user_agent
        self._slots = threading.BoundedSemaphore(max(1, int(max_concurrency)))
        networks = self.allow_networks
        http_conn = type("_HTTPConnection", (_GuardedHTTPConnection,), {"allow_networks": networks})
        https_conn = type("_HTTPSConnection", (_GuardedHTTPSConnection,), {"allow_networks": networks})
        self._pools = urllib3.PoolManager(num_pools=pool_size, maxsize=pool_size, block=False, ca_certs=_ca_bundle())
        self._pools.pool_classes_by_scheme = {
            "http": type("_HTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("_HTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }

    def get(self, url: str, **kwargs) -> OutboundResponse:
        """Send a GET to url (see request)."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs) -> OutboundResponse:
        """Send a POST to url (see request)."""
        return self.request("POST", url, **kwargs)

    def request(self, method: str, url: str, *, headers: dict | None = None, data=None, json=None,
                timeout: float | None = None, max_bytes: int | None = None) -> OutboundResponse:
        """Make one call and answer any status but 3xx; a refusal, redirect or failure raises OutboundError."""
        try:
            return self._request(method, url, headers, data, json, timeout, max_bytes)
        except OutboundError as exc:
            log.warning("outbound %s %s: %s%s", method, _loggable(url), exc.reason,
                        f" ({exc.detail})" if exc.detail else "")
            raise

    def _request(self, method, url, headers, data, json, timeout, max_bytes) -> OutboundResponse:
        deadline = time.monotonic() + (self.timeout if timeout is None else float(timeout))
        cap = self.max_bytes if max_bytes is None else int(max_bytes)
        parts = self._checked(url)
        body, sent = self._encode(data, json, headers)
        if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise OutboundError("too many calls at once", f"{method} {parts.netloc}")
        call = _Call(deadline)
        _local.call = call
        alarm = _WATCHDOG.arm(deadline, call.cut)
        response, done = None, False
        try:
            try:
                remaining = max(0.01, deadline - time.monotonic())
                response = self._pools.urlopen(
                    method, url, body=body, headers=sent, redirect=False, retries=False, assert_same_host=False,
                    preload_content=False, decode_content=False,
                    timeout=urllib3.Timeout(connect=remaining, read=remaining))
                if 300 <= response.status < 400:
                    raise OutboundError("redirect refused",
                                        f"HTTP {response.status} to {response.headers.get('Location')}")
                content = self._read(response, cap, deadline)
            except OutboundError:
                raise
            except Exception as exc:  # noqa: BLE001 - urllib3, ssl and socket errors all mean the same to a caller
                if alarm.fired or time.monotonic() >= deadline:
                    raise OutboundError("deadline exceeded", f"{type(exc).__name__}: {exc}") from None
                raise OutboundError("connection failed", f"{type(exc).__name__}: {exc}") from None
            if alarm.cancel():  # cut by the watchdog: what was read may be a truncated body
                raise OutboundError("deadline exceeded", "the answer was still arriving")
            done = True
            return OutboundResponse(method, url, response.status, response.headers.copy(), content)
        finally:
            alarm.cancel()
            _local.call = None
            if response is not None:
                if not done:
                    response.close()  # an unread or cut answer: this connection is not reused
                response.release_conn()
            self._slots.release()

    def _checked(self, url: str):
        if not isinstance(url, str) or len(url) > MAX_URL_LENGTH or any(ord(c) <= 32 or ord(c) == 127 for c in url):
            raise OutboundError("not a URL", repr(url)[:200])
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise OutboundError("not a URL", str(exc)) from None
        if parts.scheme not in ("http", "https"):
            raise OutboundError("only https URLs are accepted", f"scheme {parts.scheme!r}")
        if not parts.hostname:
            raise OutboundError("the URL has no host")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise OutboundError("credentials in the URL are not accepted")
        return parts

    def _encode(self, data, json, headers) -> tuple[bytes | None, dict]:
        sent = {"User-Agent": self.user_agent, "Accept-Encoding": "identity"}
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent["Content-Type"] = "application/json"
        elif isinstance(data, dict):
            body = urlencode(data).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        elif isinstance(data, str):
            body = data.encode()
        elif data is not None:
            body = bytes(data)
        sent.update(headers or {})
        sent["User-Agent"] = self.user_agent
        return body, sent

    @staticmethod
    def _read(response, cap: int, deadline: float) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > cap:
            raise OutboundError("answer too large", f"Content-Length {declared} over {cap}")
        decoder = _decoder(response.headers.get("Content-Encoding", ""))
        chunks, total = [], 0
        while True:
            if time.monotonic() >= deadline:
                raise OutboundError("deadline exceeded", f"{total} bytes read")
            raw = response.read1(CHUNK, decode_content=False)
            if not raw:
                break
            chunk = decoder.decompress(raw, cap + 1 - total) if decoder else raw
            total += len(chunk)
            if total > cap or (decoder and decoder.unconsumed_tail):
                raise OutboundError("answer too large", f"over {cap} bytes")
            chunks.append(chunk)
        if decoder:
            tail = decoder.flush()
            total += len(tail)
            if total > cap:
                raise OutboundError("answer too large", f"over {cap} bytes")
            chunks.append(tail)
        return b"".join(chunks)


def _ca_bundle() -> str:
    """Return the CA bundle to trust: the one an operator set for requests (an on-premises CA), else certifi's."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or certifi.where()


def _loggable(url: str) -> str:
    """Return the URL without its query string, which may carry a platform's tokens."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"
    except ValueError:
        return repr(url)[:200]
