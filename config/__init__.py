"""Settings in layers: committed defaults, then the environment, then the caller's overrides."""
from __future__ import annotations

import ipaddress
import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

from config import defaults

ROOT = Path(__file__).resolve().parent.parent


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be an integer, got {raw!r}") from exc


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise RuntimeError(f"{name} must be 1/0, true/false, yes/no or on/off, got {raw!r}")


def _networks(name: str, value) -> list[str]:
    """CIDRs from a comma-separated string or a list; a bad one stops the start with a clear message."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    try:
        return [str(ipaddress.ip_network(str(item).strip(), strict=False)) for item in items if str(item).strip()]
    except ValueError as exc:
        raise RuntimeError(f"{name} must be comma-separated CIDR networks such as 10.20.0.0/16, "
                           f"got {value!r}: {exc}") from exc


def _database_url(instance_path: Path) -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{instance_path / 'attendance.db'}"
    # psycopg 3 is the driver we ship; accept the usual spellings of a PostgreSQL URL.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _secret_key(instance_path: Path, production: bool) -> str:
    key = os.environ.get("SECRET_KEY", "").strip()
    if key:
        return key
    if production:
        raise RuntimeError("SECRET_KEY must be set when FLASK_ENV/APP_ENV is production")
    # Embedded mode: keep one random key per instance so tokens survive a restart.
    instance_path.mkdir(parents=True, exist_ok=True)
    path = instance_path / "secret_key"
    try:
        # O_EXCL: of several processes starting at once exactly one creates the file, and 0o600 from
        # the first byte means it is never readable by others, whatever the umask.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret_key(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
        handle.flush()
        os.fsync(handle.fileno())
    return _read_secret_key(path)  # what is on disk is what every process uses


def _read_secret_key(path: Path) -> str:
    """Read the key file, waiting briefly while another process is still writing it."""
    deadline = time.monotonic() + 5
    while True:
        key = path.read_text().strip()
        if key or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if not key:
        raise RuntimeError(f"{path} is empty: delete it, or set SECRET_KEY")
    return key


def _tool_base_url(production: bool, overrides: dict) -> str:
    """The configured public origin; outside production the development server's, never the Host header."""
    url = (overrides["TOOL_BASE_URL"] if "TOOL_BASE_URL" in overrides
           else os.environ.get("TOOL_BASE_URL", "")) or ""
    url = url.strip().rstrip("/")
    if not url:
        if production:
            raise RuntimeError("TOOL_BASE_URL must be set when APP_ENV is production "
                               "(the tool's public https origin, e.g. https://attendance.example.edu)")
        return defaults.TOOL_BASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RuntimeError(f"TOOL_BASE_URL must be an http(s) origin such as https://attendance.example.edu, "
                           f"got {url!r}")
    return url


def load(instance_path: Path, overrides: dict | None = None) -> dict:
    """Build the settings dict: defaults, then environment variables, then overrides."""
    overrides = dict(overrides or {})
    settings = {k: v for k, v in vars(defaults).items() if k.isupper()}
    production = os.environ.get("APP_ENV", os.environ.get("FLASK_ENV", "")).lower() == "production"
    settings.update(
        SQLALCHEMY_DATABASE_URI=_database_url(instance_path),
        REDIS_URL=os.environ.get("REDIS_URL", "").strip() or None,
        TOOL_BASE_URL=_tool_base_url(production, overrides),
        LTI_RATE_LIMIT=os.environ.get("LTI_RATE_LIMIT", "").strip() or defaults.LTI_RATE_LIMIT,
        LTI_PENDING_STATES_PER_ADDRESS=(os.environ.get("LTI_PENDING_STATES_PER_ADDRESS", "").strip()
                                        or defaults.LTI_PENDING_STATES_PER_ADDRESS),
        API_MAX_JSON_BYTES=_env_int("API_MAX_JSON_BYTES", defaults.API_MAX_JSON_BYTES),
        TRUSTED_PROXIES=_env_int("TRUSTED_PROXIES", defaults.TRUSTED_PROXIES),
        CAMPUS_NETWORKS=[c.strip() for c in os.environ.get("CAMPUS_NETWORKS", "").split(",") if c.strip()],
        KEYS_DIR=os.environ.get("KEYS_DIR", "").strip() or str(ROOT / "keys"),
        MAX_UPLOAD_MB=_env_int("MAX_UPLOAD_MB", defaults.MAX_UPLOAD_MB),
        WRONG_CODE_LIMIT_STUDENT=os.environ.get("WRONG_CODE_LIMIT_STUDENT", defaults.WRONG_CODE_LIMIT_STUDENT),
        WRONG_CODE_LIMIT_ADDRESS=os.environ.get("WRONG_CODE_LIMIT_ADDRESS", defaults.WRONG_CODE_LIMIT_ADDRESS),
        CODE_ROTATION_SECONDS=_env_int("CODE_ROTATION_SECONDS", defaults.CODE_ROTATION_SECONDS),
        UPLOAD_DIR=os.environ.get("UPLOAD_DIR", "").strip() or str(instance_path / "uploads"),
        LAUNCH_TOKEN_TTL=_env_int("LAUNCH_TOKEN_TTL", defaults.LAUNCH_TOKEN_TTL),
        KEY_ROTATION_GRACE_DAYS=_env_int("KEY_ROTATION_GRACE_DAYS", defaults.KEY_ROTATION_GRACE_DAYS),
        PRODUCTION=production,
        AUTO_MIGRATE=os.environ.get("AUTO_MIGRATE", "1").strip().lower() not in ("0", "false", "no"),
        CSP_EXTRA_FRAME_ANCESTORS=_env_list("CSP_EXTRA_FRAME_ANCESTORS"),
        CSP_EXTRA_CONNECT_SRC=_env_list("CSP_EXTRA_CONNECT_SRC"),
        LTI_OPEN_REGISTRATION=_env_flag("LTI_OPEN_REGISTRATION", defaults.LTI_OPEN_REGISTRATION),
        LTI_INVITE_HOURS=_env_int("LTI_INVITE_HOURS", defaults.LTI_INVITE_HOURS),
        **{name: _env_int(name, getattr(defaults, name)) for name in (
            "WS_MAX_PER_USER", "WS_MAX_PER_SESSION", "WS_MAX_PER_PROCESS", "WS_PING_SECONDS", "WS_TICKET_TTL",
            "ACTIVE_CHECK_SECONDS", "CSP_ORIGINS_CACHE_SECONDS", "CHECKIN_EARLY_MINUTES", "OUTBOUND_MAX_BYTES", "OUTBOUND_MAX_CONCURRENCY", "LTI_HTTP_TIMEOUT")},
    )
    if "SECRET_KEY" not in overrides:
        settings["SECRET_KEY"] = _secret_key(instance_path, production)
    overrides.pop("TOOL_BASE_URL", None)  # applied above, checked and normalized
    settings.update(overrides)
    settings["OUTBOUND_ALLOW_NETWORKS"] = _networks("OUTBOUND_ALLOW_NETWORKS", settings.get(
        "OUTBOUND_ALLOW_NETWORKS", os.environ.get("OUTBOUND_ALLOW_NETWORKS", "")))
    # A cookie session lives no longer than the launch token a launch hands out at the same time.
    settings["PERMANENT_SESSION_LIFETIME"] = settings["LAUNCH_TOKEN_TTL"]
    settings.setdefault("RATELIMIT_STORAGE_URI", settings["REDIS_URL"] or "memory://")
    settings["MAX_CONTENT_LENGTH"] = settings["MAX_UPLOAD_MB"] * 1024 * 1024 + 64 * 1024
    return settings
