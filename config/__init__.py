"""Settings in layers: committed defaults, then the environment, then the caller's overrides."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

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
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load(instance_path: Path, overrides: dict | None = None) -> dict:
    """Build the settings dict: defaults, then environment variables, then overrides."""
    overrides = dict(overrides or {})
    settings = {k: v for k, v in vars(defaults).items() if k.isupper()}
    production = os.environ.get("APP_ENV", os.environ.get("FLASK_ENV", "")).lower() == "production"
    settings.update(
        SQLALCHEMY_DATABASE_URI=_database_url(instance_path),
        REDIS_URL=os.environ.get("REDIS_URL", "").strip() or None,
        TOOL_BASE_URL=os.environ.get("TOOL_BASE_URL", "").strip().rstrip("/") or None,
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
    )
    if "SECRET_KEY" not in overrides:
        settings["SECRET_KEY"] = _secret_key(instance_path, production)
    settings.update(overrides)
    settings.setdefault("RATELIMIT_STORAGE_URI", settings["REDIS_URL"] or "memory://")
    settings["MAX_CONTENT_LENGTH"] = settings["MAX_UPLOAD_MB"] * 1024 * 1024 + 64 * 1024
    return settings
