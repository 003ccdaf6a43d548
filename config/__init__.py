"""Flask settings in layers: committed constants and typed defaults, then the environment, then overrides.

`config.settings.Settings` holds every operator knob (typed, validated, one per environment
variable); `config.defaults` the constants no operator should change. `load` merges them into
the plain dict `app.config.update` takes, with the few values derived from others.
"""
from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from config import defaults
from config.settings import Settings, SettingsError, read

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["Settings", "SettingsError", "load"]


def load(instance_path: Path, overrides: dict | None = None) -> dict:
    """Build the settings dict: constants, then typed settings from the environment, then overrides."""
    overrides = dict(overrides or {})
    settings = read(overrides)
    result = {name: value for name, value in vars(defaults).items() if name.isupper()}
    result.update(settings.model_dump(exclude={"DATABASE_URL", "SECRET_KEY"}))
    result.update(
        PRODUCTION=settings.production,
        INSTANCE_PATH=str(instance_path),  # the folder create_app chose, from the same variable
        SQLALCHEMY_DATABASE_URI=_database_url(settings.DATABASE_URL, instance_path),
        KEYS_DIR=settings.KEYS_DIR or str(ROOT / "keys"),
        UPLOAD_DIR=settings.UPLOAD_DIR or str(instance_path / "uploads"),
        SECRET_KEY=(settings.SECRET_KEY.get_secret_value() if settings.SECRET_KEY is not None
                    else _secret_key(instance_path, settings.production)),
    )
    # Keys that are not settings (constants, Flask's own such as TESTING or SQLALCHEMY_DATABASE_URI)
    # pass through as given; settings were validated by `read` and are taken from it.
    result.update({name: value for name, value in overrides.items() if name not in Settings.model_fields})
    # A cookie session lives no longer than the launch token a launch hands out at the same time.
    result["PERMANENT_SESSION_LIFETIME"] = result["LAUNCH_TOKEN_TTL"]
    result.setdefault("RATELIMIT_STORAGE_URI", result["REDIS_URL"] or "memory://")
    # Room for the multipart envelope around the largest document.
    result["MAX_CONTENT_LENGTH"] = result["MAX_UPLOAD_MB"] * 1024 * 1024 + 64 * 1024
    return result


def _database_url(url: str | None, instance_path: Path) -> str:
    if not url:
        return f"sqlite:///{instance_path / 'attendance.db'}"
    # psycopg 3 is the driver we ship; accept the usual spellings of a PostgreSQL URL.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _secret_key(instance_path: Path, production: bool) -> str:
    """Answer the instance's own secret key, creating it once; production must set SECRET_KEY instead."""
    if production:
        raise SettingsError("SECRET_KEY must be set when FLASK_ENV/APP_ENV is production")
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
        raise SettingsError(f"{path} is empty: delete it, or set SECRET_KEY")
    return key
