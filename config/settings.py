"""Every knob an operator may turn: typed, range-checked, read from the environment under its own name.

One field per variable; its default, type and meaning here are the only copy (the README's
Configuration table is generated from them: `python -m config.table`). Values come from, in
rising priority: the field's default, the environment, the caller's overrides (`create_app`).
"""
from __future__ import annotations

import ipaddress
from typing import Annotated, Any
from urllib.parse import urlsplit

from limits import parse as parse_rate_limit
from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_TOOL_BASE_URL = "http://127.0.0.1:5000"
# Values never echoed in an error message: they may carry a password.
SECRET_FIELDS = frozenset({"SECRET_KEY", "DATABASE_URL", "REDIS_URL"})


class SettingsError(RuntimeError):
    """A setting the tool cannot start with; the message names each variable at fault."""


def _comma_list(value: Any) -> list[str]:
    """Split a comma-separated string (the environment's form); a list (an override's form) passes."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


def _cidrs(items: list[str]) -> list[str]:
    try:
        return [str(ipaddress.ip_network(item, strict=False)) for item in items]
    except ValueError as exc:
        raise ValueError(f"must be comma-separated CIDR networks such as 10.20.0.0/16: {exc}") from None


def _origins(items: list[str]) -> list[str]:
    for item in items:
        parts = urlsplit(item if "://" in item else "//" + item)
        if (parts.scheme not in ("", "http", "https") or not parts.hostname or parts.path not in ("", "/")
                or parts.query or parts.fragment or any(c in item for c in " ;'\"")):
            raise ValueError(f"{item!r} is not an origin: give https://host[:port] or a bare host[:port]")
    return [item.rstrip("/") for item in items]


def _rate_limit(value: str) -> str:
    try:
        amount = parse_rate_limit(value).amount
    except ValueError:
        raise ValueError("must be a rate limit such as '5 per minute' or '3000 per 10 minutes'") from None
    if amount < 1:
        raise ValueError("must allow at least 1 request")
    return value.strip()


def _optional_str(value: Any) -> Any:
    """An empty or blank string means unset, as for an empty environment variable."""
    return None if isinstance(value, str) and not value.strip() else value


Networks = Annotated[list[str], NoDecode, BeforeValidator(_comma_list), AfterValidator(_cidrs)]
Origins = Annotated[list[str], NoDecode, BeforeValidator(_comma_list), AfterValidator(_origins)]
RateLimit = Annotated[str, AfterValidator(_rate_limit)]
OptionalText = Annotated[str | None, BeforeValidator(_optional_str)]


def knob(default: Any, meaning: str, *, shown: str | None = None, kind: str | None = None, **constraints) -> Any:
    """Declare a setting: its default, what it means, and how the README shows its default and type."""
    extra = {key: value for key, value in (("shown", shown), ("kind", kind)) if value is not None}
    return Field(default, description=meaning, json_schema_extra=extra or None, **constraints)


class Settings(BaseSettings):
    """The operator's settings; each field is read from the environment variable of the same name."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="forbid")

    # -- deployment ------------------------------------------------------------------------------
    APP_ENV: str = Field("", validation_alias=AliasChoices("APP_ENV", "FLASK_ENV"), description=(
        "`production` makes a missing `SECRET_KEY` or `TOOL_BASE_URL` fatal at start (`FLASK_ENV` is read "
        "when `APP_ENV` is unset)"), json_schema_extra={"shown": "unset", "kind": "text"})
    TOOL_BASE_URL: OptionalText = knob(
        None, "public origin written into every URL given to an LMS (never taken from the request's Host header)",
        shown=f"`python app.py`: `http://127.0.0.1:<port>`; otherwise `{DEV_TOOL_BASE_URL}`; "
              "required when `APP_ENV=production`", kind="http(s) URL")
    DATABASE_URL: OptionalText = knob(
        None, "e.g. `postgresql://user@host/db` (psycopg 3; `postgres://` is accepted too)",
        shown="SQLite in `instance/attendance.db`", kind="database URL")
    REDIS_URL: OptionalText = knob(
        None, "OIDC state, nonces, rate-limit counters and real-time fan-out between processes, in Redis",
        shown="unset", kind="`redis://` or `rediss://` URL")
    REDIS_PREFIX: str = knob("attendance:", "keys the tool writes to Redis start with this (instances sharing "
                             "one Redis need different prefixes)", kind="text", min_length=1, max_length=64)
    SECRET_KEY: SecretStr | None = knob(
        None, "signs sessions and launch tokens; required when `APP_ENV=production`",
        shown="random, kept in `instance/secret_key` (created mode 0600; concurrent first starts share one key)",
        kind="text")
    INSTANCE_PATH: OptionalText = knob(
        None, "where SQLite, the secret key and uploads live (read by `create_app` before the other settings)",
        shown="`instance/`", kind="directory")
    KEYS_DIR: OptionalText = knob(None, "where the tool's private keys live", shown="`keys/`", kind="directory")
    UPLOAD_DIR: OptionalText = knob(None, "justification documents, outside the web root, random names",
                                    shown="`instance/uploads`", kind="directory")
    AUTO_MIGRATE: bool = knob(True, "`create_app` runs the Alembic migrations at start; 0: run "
                              "`flask --app app db upgrade` in the release step (`python app.py` always migrates)")
    AUTO_CREATE_KEYS: bool = knob(True, "`create_app` creates the first signing key when `KEYS_DIR` has none; 0: "
                                  "run `flask --app app keys create` in the release step (`python app.py` always does)")
    TRUSTED_PROXIES: int = knob(0, "take client address and scheme from the last N `X-Forwarded-*` hops", ge=0, le=20)
    KEY_ROTATION_GRACE_DAYS: int = knob(7, "how long a rotated-out key stays published", ge=0, le=365)
    LAUNCH_TOKEN_TTL: int = knob(8 * 3600, "seconds a page's launch token (and the cookie session) stays valid",
                                 ge=1, le=7 * 86400)
    TOOL_TITLE: str = knob("Attendance", "the tool's name as the LMS shows it (registration, Canvas JSON, "
                           "deep links)", kind="text", min_length=1, max_length=255)
    TOOL_DESCRIPTION: str = knob("Class attendance with rotating codes, QR check-in and automatic grades.",
                                 "the tool's description as the LMS shows it", kind="text", min_length=1,
                                 max_length=1000)

    # -- calls to and from platforms ------------------------------------------------------------
    OUTBOUND_ALLOW_NETWORKS: Networks = knob(
        [], "CIDRs the tool may call on a platform's behalf although they are loopback, private or link-local "
            "(an on-premises LMS, tests: `127.0.0.1/32`); plain `http` platform URLs only for these",
        shown="empty", kind="CIDR list")
    OUTBOUND_MAX_BYTES: int = knob(2 * 1024 * 1024, "largest answer read from a platform (key set, configuration, "
                                   "roster page, token)", ge=1024, le=256 * 1024 * 1024)
    OUTBOUND_MAX_CONCURRENCY: int = knob(16, "calls to platforms in flight at once per process; more wait within "
                                         "their deadline (`LTI_HTTP_TIMEOUT`)", ge=1, le=1024)
    LTI_HTTP_TIMEOUT: float = knob(10.0, "seconds one call to a platform may take, all of it", gt=0, le=300)
    LTI_INVITE_HOURS: int = knob(7 * 24, "how long a registration invitation stays usable", ge=1, le=24 * 365)
    LTI_OPEN_REGISTRATION: bool = knob(False, "1: dynamic registration without an invitation, new platforms "
                                       "pending an admin's approval")
    ACTIVE_CHECK_SECONDS: int = knob(5, "how long a process trusts \"this platform and deployment are still "
                                     "active\" before reading it again", ge=0, le=3600)
    LTI_RATE_LIMIT: RateLimit = knob(
        "6000 per minute", "`/lti/login`, `/lti/launch` and `/lti/register` requests one client address may make "
        "(an IPv6 client counts by its /64); past it, 429 with `Retry-After`", kind="rate limit")
    LTI_PENDING_STATES_PER_ADDRESS: RateLimit = knob(
        "3000 per 10 minutes", "logins (each stores a state until its launch or 10 minutes) one client address "
        "may start; past it, 429", kind="rate limit")

    # -- web: bodies, pages, sockets ------------------------------------------------------------
    API_MAX_JSON_BYTES: int = knob(128 * 1024, "largest JSON body on `/api/` (413 beyond); JSON nested deeper "
                                   "than 32 levels is a 400", ge=1024, le=64 * 1024 * 1024)
    MAX_UPLOAD_MB: int = knob(5, "largest justification document", ge=1, le=1024)
    CSP_EXTRA_FRAME_ANCESTORS: Origins = knob(
        [], "comma-separated origins besides the registered platforms' that may frame the tool (an LMS on a "
            "vanity host)", shown="empty", kind="origin list")
    CSP_EXTRA_CONNECT_SRC: Origins = knob(
        [], "origins the pages may connect to besides the tool's own (a WebSocket server elsewhere: give its "
            "bare host)", shown="empty", kind="origin list")
    CSP_ORIGINS_CACHE_SECONDS: int = knob(30, "how long a process caches the registered platforms' origins for "
                                          "`frame-ancestors` and `form-action`", ge=0, le=86400)
    WS_MAX_PER_USER: int = knob(3, "live sockets one user may hold per server process; a newer one closes the "
                                "oldest (code 4429), so a reload never locks anyone out", ge=1, le=1000)
    WS_MAX_PER_SESSION: int = knob(2000, "live sockets (teachers and students) on one class session per server "
                                   "process; past it, 429 at the handshake", ge=1, le=1_000_000)
    WS_MAX_PER_PROCESS: int | None = knob(
        None, "live sockets one server process may hold; past it, 429 at the handshake. Keep it below "
              "`--worker-connections` (gevent) or `--threads` (threads) so HTTP always has room",
        shown="gevent: 800; gunicorn threads: half of `--threads` (0 with the sync worker); `python app.py`: 100",
        ge=0, le=1_000_000)
    WS_PING_SECONDS: float = knob(20.0, "a socket pings after this long without a message, and re-checks that its "
                                  "platform and deployment are still active", gt=0, le=3600)
    WS_TICKET_TTL: int = knob(60, "seconds a page's single-use socket ticket (`POST /api/ws-ticket/`) stays usable",
                              ge=1, le=3600)

    # -- attendance: site defaults a course's settings may override ---------------------------------
    CHECKIN_EARLY_MINUTES: int = knob(15, "check-in may open (and accept students) at most this long before a "
                                      "class starts", ge=0, le=1440)
    CHECKIN_PRESENT_MINUTES: int = knob(10, "students checking in up to this long after the start are present "
                                        "(per course in its settings)", ge=0, le=240)
    CHECKIN_LATE_MINUTES: int = knob(30, "after the present window, late until this long after the start; then "
                                     "check-in closes (per course; not shorter than the present window)", ge=0, le=480)
    CODE_ROTATION_SECONDS: int = knob(15, "how often the attendance code changes (per course in its settings)",
                                      ge=5, le=300)
    ADHOC_SESSION_MINUTES: int = knob(90, "length of the class session \"Start check-in\" creates when none is "
                                      "chosen", ge=5, le=1440)
    POINTS_PRESENT: float = knob(1.0, "grade points of a present record (per course)", ge=0.01, le=100)
    POINTS_LATE: float = knob(0.5, "grade points of a late record (per course; at most `POINTS_PRESENT`)",
                              ge=0, le=100)
    POINTS_ABSENT: float = knob(0.0, "grade points of an absence (per course; at most `POINTS_LATE`)", ge=0, le=100)
    GEOFENCE_ACCURACY_CAP_M: int = knob(100, "metres: reported GPS accuracy widens the classroom circle by at "
                                        "most this", ge=0, le=10_000)
    GEOFENCE_POOR_ACCURACY_M: int = knob(150, "metres: a location less accurate than this is flagged", ge=1,
                                         le=100_000)
    CAMPUS_NETWORKS: Networks = knob([], "the institution's CIDRs (used by check-in fraud signals; a course may "
                                     "override them)", shown="empty", kind="CIDR list")
    WRONG_CODE_LIMIT_STUDENT: RateLimit = knob("5 per 5 minutes", "wrong codes a student may type before 429",
                                               kind="rate limit")
    WRONG_CODE_LIMIT_ADDRESS: RateLimit = knob("3000 per minute", "wrong codes from one network address (a campus "
                                               "NAT hides a whole hall)", kind="rate limit")

    # -- grades (AGS) and roster (NRPS) ---------------------------------------------------------
    GRADE_SCORE_MAXIMUM: int = knob(100, "`scoreMaximum` of the line items the tool creates and of every score "
                                    "it posts", ge=1, le=10_000)
    GRADE_LINE_ITEM_LABEL: str = knob("Attendance", "label of the gradebook column the tool creates",
                                      kind="text", min_length=1, max_length=255)
    GRADE_LINE_ITEM_TAG: str = knob("attendance", "tag by which the tool finds its gradebook column; changing it "
                                    "on a running install makes new columns for links made before", kind="text",
                                    min_length=1, max_length=64)
    GRADE_WORKER_IN_APP: bool = knob(True, "`python app.py` delivers grades from a background thread (0: run "
                                     "`flask --app app worker` instead)")
    GRADE_WORKER_INTERVAL: float = knob(1.0, "seconds between a grade worker's polls of the outbox", gt=0, le=60)
    GRADE_WORKER_BATCH: int = knob(200, "outbox rows a grade worker takes at once", ge=1, le=10_000)
    GRADE_POST_CONCURRENCY: int = knob(4, "scores in flight at once to one LMS", ge=1, le=64)
    GRADE_RETRY_MAX_SECONDS: int = knob(30, "longest wait between retries of a failed post (a grade arrives within "
                                        "twice this of the LMS answering again)", ge=1, le=3600)
    ROSTER_SYNC_ON_LAUNCH: bool = knob(True, "read the course roster (NRPS) on teacher launches")
    ROSTER_SYNC_INTERVAL: int = knob(600, "seconds: at most one roster read per course per this on teacher "
                                     "launches", ge=0, le=7 * 86400)

    @field_validator("APP_ENV")
    @classmethod
    def _lowercase(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("TOOL_BASE_URL")
    @classmethod
    def _http_origin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("must be an http(s) origin such as https://attendance.example.edu")
        return url

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        value = value.strip()
        try:
            make_url(value)
        except (ArgumentError, ValueError):  # ValueError: a port that is not a number
            raise ValueError("must be a database URL such as postgresql://user@host/db") from None
        return value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if urlsplit(value).scheme not in ("redis", "rediss"):
            # Both the store and the rate limiter (limits) must understand it: these two schemes they share.
            raise ValueError("must be a redis:// or rediss:// URL such as redis://localhost:6379/0")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.CHECKIN_LATE_MINUTES < self.CHECKIN_PRESENT_MINUTES:
            raise ValueError("CHECKIN_LATE_MINUTES must not be shorter than CHECKIN_PRESENT_MINUTES")
        if not self.POINTS_ABSENT <= self.POINTS_LATE <= self.POINTS_PRESENT:
            raise ValueError("POINTS_ABSENT <= POINTS_LATE <= POINTS_PRESENT must hold")
        if self.production and self.SECRET_KEY is None:
            raise ValueError("SECRET_KEY must be set when FLASK_ENV/APP_ENV is production")
        if self.TOOL_BASE_URL is None:
            if self.production:
                raise ValueError("TOOL_BASE_URL must be set when APP_ENV is production "
                                 "(the tool's public https origin, e.g. https://attendance.example.edu)")
            self.TOOL_BASE_URL = DEV_TOOL_BASE_URL  # the development server's, never the request's Host
        return self

    @property
    def production(self) -> bool:
        """Answer whether APP_ENV (or FLASK_ENV) says production."""
        return self.APP_ENV == "production"


def read(overrides: dict | None = None) -> Settings:
    """Read the settings from the environment, the overrides' values for settings winning; fail with names."""
    given = {name: value for name, value in (overrides or {}).items() if name in Settings.model_fields}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """Turn pydantic's report into one line per bad variable, never echoing a secret's value."""
    lines = []
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if not name:  # a check across several settings names them in its message
            lines.append(message)
        elif name in SECRET_FIELDS or str(error["input"]) in message:  # a secret, or already quoted
            lines.append(f"{name}: {message}")
        else:
            lines.append(f"{name}: {message}, got {error['input']!r}")
    return "Invalid settings (environment or overrides):\n  " + "\n  ".join(lines)
