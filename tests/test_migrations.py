"""The Alembic migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""
import os

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import text

from extensions import db


def test_migrations_match_models(make_app, tmp_path):
    overrides = {} if os.environ.get("DATABASE_URL") else {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'migrated.db'}"}
    app = make_app(**overrides)
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade(directory="migrations")
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
