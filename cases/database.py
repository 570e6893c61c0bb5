"""The case database: its URL from ``service.database``, the SQLAlchemy
engine, and the schema migrations (Alembic, applied by ``ivr setup``).

SQLAlchemy was chosen because one code path then runs on SQLite (the
embedded default: a file in the state folder, nothing to install) and on
PostgreSQL (psycopg 3), with pooled connections and parameter binding done
right; Alembic, its companion, versions the schema so that a database made
by an older release is brought forward, never rebuilt. Built by the
composition roots (``app/``) and passed to the store.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from core.configuration.model import DatabaseSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class DatabaseUnavailable(Exception):
    """The database cannot be reached or refused the operation; the message says which."""


def database_url(settings: DatabaseSettings, *, state_dir: Path, password: str | None = None) -> sa.URL:
    if settings.backend == "sqlite":
        path = Path(settings.path)
        if not path.is_absolute():
            path = state_dir / path
        return sa.URL.create("sqlite+pysqlite", database=str(path))
    query = {"host": settings.host} if settings.host.startswith("/") else {}
    return sa.URL.create("postgresql+psycopg", username=settings.user, password=password or None,
                         host=None if query else settings.host, port=settings.port, database=settings.name,
                         query=query)


def make_engine(url: sa.URL | str, **kwargs) -> sa.Engine:
    """The engine for ``url``; on SQLite, foreign keys on, WAL, and a writer
    waits up to 5 s for another instead of failing at once."""
    url = sa.make_url(url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 5}, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, connect_args={"connect_timeout": 5}, **kwargs)


def _alembic(connection: sa.Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: sa.Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to ``revision``; returns (before, after)."""
    try:
        before = current_revision(engine)
        with engine.begin() as connection:
            command.upgrade(_alembic(connection), revision)
        return before, current_revision(engine)
    except sa.exc.OperationalError as exc:
        raise DatabaseUnavailable(f"{engine.url.render_as_string(hide_password=True)}: {exc.orig}") from exc


def downgrade(engine: sa.Engine, revision: str) -> None:
    with engine.begin() as connection:
        command.downgrade(_alembic(connection), revision)


def check_schema(engine: sa.Engine) -> None:
    """Refuse to serve on a database that ``ivr setup`` has not migrated."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise DatabaseUnavailable(f"{engine.url.render_as_string(hide_password=True)}: schema at revision "
                                  f"{current or 'none'}, this release needs {head}: run `ivr setup`")
