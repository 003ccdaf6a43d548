"""The attendance tool: `create_app()` builds it, `python app.py` serves it."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

import config
from extensions import db, migrate, sock

ROOT = Path(__file__).resolve().parent


def create_app(overrides: dict | None = None) -> Flask:
    """Build the app: config, extensions, LTI services, blueprints, error handlers, CLI."""
    app = Flask(__name__, instance_path=os.environ.get("INSTANCE_PATH") or str(ROOT / "instance"),
                template_folder="templates", static_folder="static")
    configure(app, overrides)
    register_extensions(app)
    register_lti_services(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_security_headers(app)
    from attendance.web.client_config import register_client_config
    register_client_config(app)
    register_commands(app)
    prepare_database(app)
    return app


def configure(app: Flask, overrides: dict | None) -> None:
    """Load the typed settings (defaults, environment, overrides) into app.config; trust the configured proxies."""
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(config.load(Path(app.instance_path), overrides))
    if app.config["TRUSTED_PROXIES"] > 0:
        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)


def register_extensions(app: Flask) -> None:
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**app.config["SQLALCHEMY_ENGINE_OPTIONS"],
                                                   "connect_args": {"timeout": 30}}
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    sock.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        from sqlalchemy import event

        with app.app_context():
            @event.listens_for(db.engine, "connect")
            def _sqlite_pragmas(dbapi_connection, _record):
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()


def register_lti_services(app: Flask) -> None:
    from attendance.web.pages import handle_launch
    from lti.keys import KeyRing
    from lti.outbound import OutboundClient
    from lti.platform_keys import PlatformKeyCache
    from lti.ratelimit import init_rate_limits
    from lti.store import make_store

    keys = KeyRing(app.config["KEYS_DIR"], key_size=app.config["KEY_SIZE"])
    if app.config["AUTO_CREATE_KEYS"]:  # otherwise the release step runs `flask --app app keys create`
        keys.ensure()
    app.extensions["lti_keys"] = keys
    # Every call to a platform goes through this one guarded client (allow-list, deadline, byte cap).
    outbound = OutboundClient(app.config["OUTBOUND_ALLOW_NETWORKS"], timeout=app.config["LTI_HTTP_TIMEOUT"],
                              max_bytes=app.config["OUTBOUND_MAX_BYTES"],
                              max_concurrency=app.config["OUTBOUND_MAX_CONCURRENCY"])
    app.extensions["lti_outbound"] = outbound
    app.extensions["lti_platform_keys"] = PlatformKeyCache(
        outbound, ttl=app.config["LTI_JWKS_CACHE_TTL"],
        min_refetch_interval=app.config["LTI_JWKS_MIN_REFETCH_INTERVAL"])
    app.extensions["lti_store"] = make_store(app.config["REDIS_URL"], app.config["REDIS_PREFIX"])
    app.extensions["lti_launch_handler"] = handle_launch
    init_rate_limits(app)  # per-address limits on /lti/login, /lti/launch and /lti/register
    from attendance.realtime import make_broker
    from lti.services import TokenCache

    app.extensions["lti_token_cache"] = TokenCache()

    app.extensions["attendance_broker"] = make_broker(app.config["REDIS_URL"], app.config["REDIS_PREFIX"])
    from attendance.web.ratelimit import WrongCodeLimiter

    app.extensions["attendance_wrong_codes"] = WrongCodeLimiter(app.config["RATELIMIT_STORAGE_URI"],
                                                                app.config["REDIS_PREFIX"] + "limits:")


def register_blueprints(app: Flask) -> None:
    app.url_map.strict_slashes = False  # /api/class-sessions and /api/class-sessions/ are the same endpoint
    from attendance.web.openapi import bp as openapi_bp
    from attendance.web.openapi import register_api
    from attendance.web.pages import bp as pages_bp
    from attendance.web.sockets import bp as sockets_bp
    from lti.views import bp as lti_bp

    app.register_blueprint(lti_bp)
    app.register_blueprint(pages_bp)
    register_api(app)  # the API blueprint, through flask-smorest (it documents each operation)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(sockets_bp)

    @app.get("/")
    def index():
        from flask import redirect, url_for

        return redirect(url_for("lti.config_page"))


def register_errorhandlers(app: Flask) -> None:
    from attendance.web.errors import register_error_handlers

    register_error_handlers(app)


def register_security_headers(app: Flask) -> None:
    """Put a nonce-based CSP, framing limits, nosniff, referrer, caching and HSTS headers on every response."""
    from attendance.web.security_headers import register_security_headers as register

    register(app)


def register_commands(app: Flask) -> None:
    from attendance.cli import worker_command
    from lti.cli import keys_cli, platform_cli

    app.cli.add_command(platform_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(worker_command)


def prepare_database(app: Flask) -> None:
    """Bring the schema up to date (Alembic) when AUTO_MIGRATE is on; else `flask --app app db upgrade` does."""
    migrations = ROOT / "migrations"
    if not app.config["AUTO_MIGRATE"] or not (migrations / "env.py").exists():
        return
    import fcntl

    from flask_migrate import upgrade

    # Several workers may start at once: one migrates, the others wait and find nothing to do.
    with open(Path(app.instance_path) / ".migrate.lock", "w") as lock, app.app_context():
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            upgrade(directory=str(migrations))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def main() -> None:
    """Serve the embedded default: create the keys and migrate the database, then run the development server."""
    parser = argparse.ArgumentParser(description="Serve the attendance tool (development server).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    if not os.environ.get("TOOL_BASE_URL"):
        os.environ["TOOL_BASE_URL"] = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    # The embedded default is one command: whatever AUTO_* say (they are for gunicorn's release steps).
    app = create_app({"AUTO_CREATE_KEYS": True, "AUTO_MIGRATE": True})
    if app.config["GRADE_WORKER_IN_APP"]:
        from attendance.lms.grade_worker import start_worker_thread

        start_worker_thread(app)  # embedded mode: grades reach the LMS without a separate process
    app.run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
