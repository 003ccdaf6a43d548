"""Settings: each variable read with its type, bad values refused by name, overrides on top, explicit setup steps."""
import re
import sqlite3
import stat
from pathlib import Path

import pytest
import requests

import config
from app import create_app
from config.settings import Settings, SettingsError
from config.table import markdown_table
from tests.support.processes import free_port, serve, stop

ROOT = Path(__file__).resolve().parent.parent
SETTING_NAMES = [*Settings.model_fields, "FLASK_ENV"]


@pytest.fixture
def env(monkeypatch):
    """An environment without any of the tool's variables (the suite itself may run with some set)."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def load(tmp_path, overrides=None) -> dict:
    """Load the settings of an instance under tmp_path, with a secret so no key file is needed."""
    return config.load(tmp_path / "instance", {"SECRET_KEY": "test", **(overrides or {})})


# (variable, value in the environment, config key, value the app reads)
READ = [
    ("APP_ENV", "Staging", "APP_ENV", "staging"),
    ("TOOL_BASE_URL", "https://attendance.example.edu/", "TOOL_BASE_URL", "https://attendance.example.edu"),
    ("TOOL_BASE_URL", "", "TOOL_BASE_URL", "http://127.0.0.1:5000"),
    ("DATABASE_URL", "postgres://u@db/att", "SQLALCHEMY_DATABASE_URI", "postgresql+psycopg://u@db/att"),
    ("DATABASE_URL", "postgresql://u@db/att", "SQLALCHEMY_DATABASE_URI", "postgresql+psycopg://u@db/att"),
    ("DATABASE_URL", "sqlite:////srv/attendance.db", "SQLALCHEMY_DATABASE_URI", "sqlite:////srv/attendance.db"),
    ("REDIS_URL", "redis://cache:6379/1", "REDIS_URL", "redis://cache:6379/1"),
    ("REDIS_URL", "rediss://cache:6380/0", "RATELIMIT_STORAGE_URI", "rediss://cache:6380/0"),
    ("REDIS_URL", "", "RATELIMIT_STORAGE_URI", "memory://"),
    ("REDIS_PREFIX", "site2:", "REDIS_PREFIX", "site2:"),
    ("SECRET_KEY", "from-the-environment", "SECRET_KEY", "from-the-environment"),
    ("KEYS_DIR", "/srv/keys", "KEYS_DIR", "/srv/keys"),
    ("UPLOAD_DIR", "/srv/uploads", "UPLOAD_DIR", "/srv/uploads"),
    ("AUTO_MIGRATE", "0", "AUTO_MIGRATE", False),
    ("AUTO_MIGRATE", "yes", "AUTO_MIGRATE", True),
    ("AUTO_CREATE_KEYS", "off", "AUTO_CREATE_KEYS", False),
    ("TRUSTED_PROXIES", "2", "TRUSTED_PROXIES", 2),
    ("TRUSTED_PROXIES", "", "TRUSTED_PROXIES", 0),
    ("KEY_ROTATION_GRACE_DAYS", "14", "KEY_ROTATION_GRACE_DAYS", 14),
    ("LAUNCH_TOKEN_TTL", "3600", "LAUNCH_TOKEN_TTL", 3600),
    ("LAUNCH_TOKEN_TTL", "3600", "PERMANENT_SESSION_LIFETIME", 3600),
    ("TOOL_TITLE", "Présence", "TOOL_TITLE", "Présence"),
    ("TOOL_DESCRIPTION", "Roll call", "TOOL_DESCRIPTION", "Roll call"),
    ("OUTBOUND_ALLOW_NETWORKS", "10.0.0.0/8, 127.0.0.1", "OUTBOUND_ALLOW_NETWORKS", ["10.0.0.0/8", "127.0.0.1/32"]),
    ("OUTBOUND_MAX_BYTES", "65536", "OUTBOUND_MAX_BYTES", 65536),
    ("OUTBOUND_MAX_CONCURRENCY", "4", "OUTBOUND_MAX_CONCURRENCY", 4),
    ("LTI_HTTP_TIMEOUT", "2.5", "LTI_HTTP_TIMEOUT", 2.5),
    ("LTI_INVITE_HOURS", "24", "LTI_INVITE_HOURS", 24),
    ("LTI_OPEN_REGISTRATION", "true", "LTI_OPEN_REGISTRATION", True),
    ("ACTIVE_CHECK_SECONDS", "0", "ACTIVE_CHECK_SECONDS", 0),
    ("LTI_RATE_LIMIT", "10 per second", "LTI_RATE_LIMIT", "10 per second"),
    ("LTI_PENDING_STATES_PER_ADDRESS", "100 per hour", "LTI_PENDING_STATES_PER_ADDRESS", "100 per hour"),
    ("API_MAX_JSON_BYTES", "4096", "API_MAX_JSON_BYTES", 4096),
    ("MAX_UPLOAD_MB", "7", "MAX_UPLOAD_MB", 7),
    ("MAX_UPLOAD_MB", "7", "MAX_CONTENT_LENGTH", 7 * 1024 * 1024 + 64 * 1024),
    ("CSP_EXTRA_FRAME_ANCESTORS", "https://lms.example.edu, vanity.example.edu:8443", "CSP_EXTRA_FRAME_ANCESTORS",
     ["https://lms.example.edu", "vanity.example.edu:8443"]),
    ("CSP_EXTRA_CONNECT_SRC", "ws.example.edu", "CSP_EXTRA_CONNECT_SRC", ["ws.example.edu"]),
    ("CSP_ORIGINS_CACHE_SECONDS", "300", "CSP_ORIGINS_CACHE_SECONDS", 300),
    ("WS_MAX_PER_USER", "5", "WS_MAX_PER_USER", 5),
    ("WS_MAX_PER_SESSION", "500", "WS_MAX_PER_SESSION", 500),
    ("WS_MAX_PER_PROCESS", "50", "WS_MAX_PER_PROCESS", 50),
    ("WS_MAX_PER_PROCESS", "", "WS_MAX_PER_PROCESS", None),
    ("WS_PING_SECONDS", "0.5", "WS_PING_SECONDS", 0.5),
    ("WS_TICKET_TTL", "30", "WS_TICKET_TTL", 30),
    ("CHECKIN_EARLY_MINUTES", "60", "CHECKIN_EARLY_MINUTES", 60),
    ("CHECKIN_PRESENT_MINUTES", "5", "CHECKIN_PRESENT_MINUTES", 5),
    ("CHECKIN_LATE_MINUTES", "45", "CHECKIN_LATE_MINUTES", 45),
    ("CODE_ROTATION_SECONDS", "30", "CODE_ROTATION_SECONDS", 30),
    ("ADHOC_SESSION_MINUTES", "50", "ADHOC_SESSION_MINUTES", 50),
    ("POINTS_PRESENT", "2", "POINTS_PRESENT", 2.0),
    ("POINTS_LATE", "0.25", "POINTS_LATE", 0.25),
    ("POINTS_ABSENT", "0", "POINTS_ABSENT", 0.0),
    ("GEOFENCE_ACCURACY_CAP_M", "50", "GEOFENCE_ACCURACY_CAP_M", 50),
    ("GEOFENCE_POOR_ACCURACY_M", "300", "GEOFENCE_POOR_ACCURACY_M", 300),
    ("CAMPUS_NETWORKS", "10.20.0.0/16,2001:db8::/32", "CAMPUS_NETWORKS", ["10.20.0.0/16", "2001:db8::/32"]),
    ("WRONG_CODE_LIMIT_STUDENT", "3 per minute", "WRONG_CODE_LIMIT_STUDENT", "3 per minute"),
    ("WRONG_CODE_LIMIT_ADDRESS", "100 per minute", "WRONG_CODE_LIMIT_ADDRESS", "100 per minute"),
    ("GRADE_SCORE_MAXIMUM", "20", "GRADE_SCORE_MAXIMUM", 20),
    ("GRADE_LINE_ITEM_LABEL", "Présence", "GRADE_LINE_ITEM_LABEL", "Présence"),
    ("GRADE_LINE_ITEM_TAG", "presence", "GRADE_LINE_ITEM_TAG", "presence"),
    ("GRADE_WORKER_IN_APP", "no", "GRADE_WORKER_IN_APP", False),
    ("GRADE_WORKER_INTERVAL", "0.2", "GRADE_WORKER_INTERVAL", 0.2),
    ("GRADE_WORKER_BATCH", "50", "GRADE_WORKER_BATCH", 50),
    ("GRADE_POST_CONCURRENCY", "8", "GRADE_POST_CONCURRENCY", 8),
    ("GRADE_RETRY_MAX_SECONDS", "10", "GRADE_RETRY_MAX_SECONDS", 10),
    ("ROSTER_SYNC_ON_LAUNCH", "false", "ROSTER_SYNC_ON_LAUNCH", False),
    ("ROSTER_SYNC_INTERVAL", "60", "ROSTER_SYNC_INTERVAL", 60),
]


@pytest.mark.parametrize("name,raw,key,expected", READ)
def test_each_variable_is_read_with_its_type(env, tmp_path, name, raw, key, expected):
    env.setenv(name, raw)
    overrides = {} if name == "SECRET_KEY" else {"SECRET_KEY": "test"}
    value = config.load(tmp_path / "instance", overrides)[key]
    assert value == expected and type(value) is type(expected)


def test_every_setting_is_covered_by_the_table_above():
    assert set(Settings.model_fields) - {name for name, *_ in READ} == {"INSTANCE_PATH"}  # read by create_app


def test_instance_path_is_where_the_secret_and_the_database_go(env, tmp_path, keys_dir):
    env.setenv("INSTANCE_PATH", str(tmp_path / "elsewhere"))
    app = create_app({"AUTO_MIGRATE": False, "KEYS_DIR": str(keys_dir)})
    assert app.instance_path == app.config["INSTANCE_PATH"] == str(tmp_path / "elsewhere")
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'elsewhere' / 'attendance.db'}"
    assert (tmp_path / "elsewhere" / "secret_key").exists()


# (variable, a value the tool must refuse to start with)
REFUSED = [
    ("TRUSTED_PROXIES", "two"), ("TRUSTED_PROXIES", "-1"), ("TRUSTED_PROXIES", "99"),
    ("MAX_UPLOAD_MB", "0"), ("MAX_UPLOAD_MB", "5.5"), ("LAUNCH_TOKEN_TTL", "0"),
    ("LTI_HTTP_TIMEOUT", "0"), ("WS_PING_SECONDS", "-1"), ("WS_MAX_PER_USER", "0"),
    ("CODE_ROTATION_SECONDS", "1"), ("OUTBOUND_MAX_CONCURRENCY", "0"), ("API_MAX_JSON_BYTES", "10"),
    ("LTI_OPEN_REGISTRATION", "maybe"), ("AUTO_MIGRATE", "2"), ("AUTO_CREATE_KEYS", "sometimes"),
    ("CAMPUS_NETWORKS", "10.0.0.0/33"), ("CAMPUS_NETWORKS", "the campus"),
    ("OUTBOUND_ALLOW_NETWORKS", "10.0.0.0/8, nope"),
    ("LTI_RATE_LIMIT", "lots"), ("LTI_RATE_LIMIT", "0 per minute"), ("WRONG_CODE_LIMIT_STUDENT", "5 per fortnight"),
    ("WRONG_CODE_LIMIT_ADDRESS", "many"), ("LTI_PENDING_STATES_PER_ADDRESS", "1 per"),
    ("TOOL_BASE_URL", "javascript:alert(1)"), ("TOOL_BASE_URL", "attendance.example.edu"),
    ("TOOL_BASE_URL", "https://attendance.example.edu/?next=evil"),
    ("REDIS_URL", "http://cache:6379"), ("DATABASE_URL", "not a url"),
    ("CSP_EXTRA_FRAME_ANCESTORS", "https://lms.example.edu/course/1"), ("CSP_EXTRA_CONNECT_SRC", "'unsafe-inline'"),
    ("CSP_EXTRA_CONNECT_SRC", "wss://ws.example.edu"),
    ("CHECKIN_LATE_MINUTES", "5"),  # shorter than the present window (10)
    ("POINTS_LATE", "2"), ("POINTS_ABSENT", "0.75"),  # more than present (1) / late (0.5)
    ("GRADE_LINE_ITEM_TAG", "x" * 65),
]


@pytest.mark.parametrize("name,raw", REFUSED)
def test_a_bad_value_stops_the_start_naming_the_variable(env, tmp_path, name, raw):
    env.setenv(name, raw)
    with pytest.raises(RuntimeError, match=re.escape(name)):  # SettingsError is a RuntimeError
        load(tmp_path)


@pytest.mark.parametrize("name,raw", [("REDIS_URL", "http://u:hunter2@cache"),
                                      ("DATABASE_URL", "postgresql://u:hunter2@db:port/x")])
def test_a_refused_url_never_shows_its_password(env, tmp_path, name, raw):
    env.setenv(name, raw)
    with pytest.raises(SettingsError) as refused:
        load(tmp_path)
    assert name in str(refused.value) and "hunter2" not in str(refused.value)


# -- overrides ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,raw,override,expected", [
    ("TRUSTED_PROXIES", "3", 1, 1),
    ("LTI_RATE_LIMIT", "10 per minute", "2 per minute", "2 per minute"),
    ("OUTBOUND_ALLOW_NETWORKS", "10.0.0.0/8", "127.0.0.1/32", ["127.0.0.1/32"]),
    ("CAMPUS_NETWORKS", "10.0.0.0/8", ["192.0.2.0/24"], ["192.0.2.0/24"]),
    ("TOOL_BASE_URL", "https://from-env.example.edu", None, "http://127.0.0.1:5000"),
    ("REDIS_URL", "redis://cache:6379/0", None, None),
    ("SECRET_KEY", "from-env", "from-override", "from-override"),
    ("LTI_OPEN_REGISTRATION", "0", True, True),
])
def test_overrides_win_over_the_environment(env, tmp_path, name, raw, override, expected):
    env.setenv(name, raw)
    assert config.load(tmp_path / "instance", {"SECRET_KEY": "test", name: override})[name] == expected


@pytest.mark.parametrize("name,override", [("MAX_UPLOAD_MB", 0), ("LTI_RATE_LIMIT", "often"),
                                           ("CAMPUS_NETWORKS", ["not-a-network"]), ("TOOL_BASE_URL", "ftp://x")])
def test_overrides_are_validated_too(env, tmp_path, name, override):
    with pytest.raises(SettingsError, match=name):
        load(tmp_path, {name: override})


def test_overrides_that_are_not_settings_pass_through(env, tmp_path):
    settings = load(tmp_path, {"TESTING": True, "LTI_JWKS_MIN_REFETCH_INTERVAL": 1,
                               "SQLALCHEMY_DATABASE_URI": "sqlite://", "RATELIMIT_STORAGE_URI": "memory://x"})
    assert settings["TESTING"] is True and settings["LTI_JWKS_MIN_REFETCH_INTERVAL"] == 1
    assert settings["SQLALCHEMY_DATABASE_URI"] == "sqlite://" and settings["RATELIMIT_STORAGE_URI"] == "memory://x"


@pytest.mark.parametrize("name,raw,expected", [
    ("SESSION_COOKIE_SECURE", "0", True), ("SESSION_COOKIE_SAMESITE", "Lax", "None"),
    ("LTI_COOKIE_PARTITIONED", "0", True), ("WTF_CSRF_CHECK_DEFAULT", "1", False), ("LTI_MAX_TOKEN_AGE", "9999", 300),
])
def test_constants_of_the_iframe_contract_and_launch_checks_ignore_the_environment(env, tmp_path, name, raw, expected):
    env.setenv(name, raw)
    assert load(tmp_path)[name] == expected


# -- production -----------------------------------------------------------------------------------
@pytest.mark.parametrize("variables,refused", [
    ({"APP_ENV": "production", "TOOL_BASE_URL": "https://a.example.edu"}, "SECRET_KEY"),
    ({"APP_ENV": "Production", "SECRET_KEY": "s"}, "TOOL_BASE_URL"),
    ({"FLASK_ENV": "production", "TOOL_BASE_URL": "https://a.example.edu"}, "SECRET_KEY"),
    ({"FLASK_ENV": "production", "SECRET_KEY": "s"}, "TOOL_BASE_URL"),
    ({"APP_ENV": "production", "SECRET_KEY": "s", "TOOL_BASE_URL": "https://a.example.edu"}, None),
    ({"APP_ENV": "development", "FLASK_ENV": "production"}, None),  # APP_ENV wins over FLASK_ENV
])
def test_production_requires_a_secret_and_a_public_url(env, tmp_path, variables, refused):
    for name, value in variables.items():
        env.setenv(name, value)
    if refused:
        with pytest.raises(RuntimeError, match=refused):
            config.load(tmp_path / "instance")
        return
    settings = config.load(tmp_path / "instance")
    assert settings["PRODUCTION"] is (variables["APP_ENV"] == "production")
    assert (tmp_path / "instance" / "secret_key").exists() is not settings["PRODUCTION"]


def test_outside_production_a_secret_is_kept_in_the_instance_folder(env, tmp_path):
    first = config.load(tmp_path / "instance")
    path = tmp_path / "instance" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and first["SECRET_KEY"] == path.read_text().strip()
    assert config.load(tmp_path / "instance")["SECRET_KEY"] == first["SECRET_KEY"]
    assert first["TOOL_BASE_URL"] == "http://127.0.0.1:5000" and first["PRODUCTION"] is False


# -- setup steps: automatic by default, explicit commands otherwise ---------------------------------
def tables(db_path: Path) -> set[str]:
    """Answer the tables of a SQLite file (none when it does not exist)."""
    if not db_path.exists():
        return set()
    with sqlite3.connect(db_path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.fixture
def fresh(env, tmp_path):
    """A fresh instance: its own folder, database and key directory, nothing created yet."""
    env.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    env.setenv("KEYS_DIR", str(tmp_path / "keys"))
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    return tmp_path


def test_with_both_auto_flags_off_the_factory_creates_no_key_and_no_table(fresh, env):
    env.setenv("AUTO_MIGRATE", "0")
    env.setenv("AUTO_CREATE_KEYS", "0")
    app = create_app()
    assert not (fresh / "keys").exists() or not any((fresh / "keys").iterdir())
    assert tables(fresh / "fresh.db") == set()
    runner = app.test_cli_runner()
    created = runner.invoke(args=["keys", "create"])
    assert created.exit_code == 0, created.output
    kid = app.extensions["lti_keys"].current().kid
    assert kid in created.output and [p.stem for p in (fresh / "keys").glob("*.pem")] == [kid]
    again = runner.invoke(args=["keys", "create"])
    assert again.exit_code == 0 and [p.stem for p in (fresh / "keys").glob("*.pem")] == [kid]  # idempotent
    upgraded = runner.invoke(args=["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert {"alembic_version", "lti_registration", "user"} <= tables(fresh / "fresh.db")


def test_by_default_the_factory_creates_the_key_and_migrates(fresh):
    app = create_app()
    assert app.config["AUTO_MIGRATE"] is True and app.config["AUTO_CREATE_KEYS"] is True
    assert [p.stem for p in (fresh / "keys").glob("*.pem")] == [app.extensions["lti_keys"].current().kid]
    assert "alembic_version" in tables(fresh / "fresh.db")


def test_python_app_py_creates_the_key_and_migrates_whatever_the_flags(tool_env, tmp_path):
    port = free_port()
    db_path = tmp_path / "served.db"
    env = dict(tool_env, AUTO_MIGRATE="0", AUTO_CREATE_KEYS="0", DATABASE_URL=f"sqlite:///{db_path}")
    env.pop("REDIS_URL", None)
    proc = serve(env, port)
    try:
        assert "alembic_version" in tables(db_path)
        assert (Path(env["KEYS_DIR"]) / "keyring.json").exists()
        assert requests.get(f"http://127.0.0.1:{port}/lti/jwks", timeout=5).json()["keys"]
    finally:
        stop(proc)


# -- the README ----------------------------------------------------------------------------------
def test_the_readme_configuration_table_is_generated_from_the_settings():
    lines = (ROOT / "README.md").read_text().split("## Configuration\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    assert "\n".join(lines[start:end]) + "\n" == markdown_table(), "regenerate it: .venv/bin/python -m config.table"
