"""Engines, sessions and migrations, with errors a person can act on.

Example:
    >>> from skuaudit.storage import upgrade_database, session_scope, Store
    >>> url = "sqlite:///:memory:"  # doctest: +SKIP
    >>> upgrade_database(url)        # doctest: +SKIP
    >>> with session_scope(url) as s:  # doctest: +SKIP
    ...     s.add(Store(name="Store 1"))
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from skuaudit.config import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 30_000


def _busy_timeout_ms() -> int:
    """How long SQLite waits for another writer (``SKUAUDIT_DB_BUSY_TIMEOUT_MS``), default 30 s."""
    raw = os.environ.get("SKUAUDIT_DB_BUSY_TIMEOUT_MS", "").strip()
    if not raw:
        return DEFAULT_SQLITE_BUSY_TIMEOUT_MS
    if not raw.isdigit():
        raise DatabaseError(
            f"SKUAUDIT_DB_BUSY_TIMEOUT_MS must be a whole number of ms, got {raw!r}"
        )
    return int(raw)


class DatabaseError(RuntimeError):
    """The database cannot be used; the message says why and what to do."""


class SchemaTooNewError(DatabaseError):
    """The database was migrated by a newer skuaudit than this one."""


def _describe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={_busy_timeout_ms()}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@functools.lru_cache(maxsize=16)
def _engine_for(url: str) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(
            f"SKUAUDIT_DB_URL is not a valid database URL ({url!r}); "
            "expected e.g. sqlite:///data/skuaudit.db or postgresql+psycopg://user@host/db"
        ) from exc
    kwargs: dict = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            parent = Path(database).expanduser().resolve().parent
            if not parent.is_dir():
                raise DatabaseError(
                    f"cannot open database {_describe_url(url)}: folder {parent} does not exist"
                )
        kwargs["connect_args"] = {"timeout": _busy_timeout_ms() / 1000, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(url, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise DatabaseError(
            f"no driver for database URL {_describe_url(url)}: {exc}. "
            "Supported: sqlite:///... and postgresql+psycopg://..."
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def get_engine(url: str | None = None) -> Engine:
    """The (cached) engine for ``url`` or ``SKUAUDIT_DB_URL``; SQLite gets WAL and a busy timeout."""
    return _engine_for(url or get_settings().db_url)


def get_sessionmaker(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back (and re-raise) on any error."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except OperationalError as exc:
        session.rollback()
        raise DatabaseError(_operational_message(url, exc)) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _operational_message(url: str | None, exc: OperationalError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    where = _describe_url(url or get_settings().db_url)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return f"database {where} is locked by another program; nothing was saved, try again"
    if "readonly" in lowered or "read-only" in lowered:
        return f"database {where} is read-only; nothing was saved (check file permissions)"
    if "unable to open" in lowered:
        return f"cannot open database {where}: {text}"
    return f"database {where} failed: {text}"


def _alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()


def current_revision(url: str | None = None) -> str | None:
    """The Alembic revision stored in the database, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    engine = get_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise DatabaseError(_operational_message(url, exc)) from exc


def check_schema(url: str | None = None) -> None:
    """Raise unless the database is at this code's schema revision."""
    from alembic.script import ScriptDirectory

    url = url or get_settings().db_url
    rev = current_revision(url)
    script = ScriptDirectory.from_config(_alembic_config(url))
    head = script.get_current_head()
    if rev == head:
        return
    if rev is None:
        raise DatabaseError(
            f"database {_describe_url(url)} has no skuaudit schema yet; run 'skuaudit db upgrade'"
        )
    known = {r.revision for r in script.walk_revisions()}
    if rev not in known:
        raise SchemaTooNewError(
            f"database {_describe_url(url)} is at schema revision {rev}, which this version of "
            "skuaudit does not know (it was migrated by a newer release); upgrade skuaudit"
        )
    raise DatabaseError(
        f"database {_describe_url(url)} is at an older schema ({rev}); run 'skuaudit db upgrade'"
    )


def upgrade_database(url: str | None = None, revision: str = "head") -> str:
    """Apply the migrations up to ``revision`` (default: all); returns the revision reached.
    Refuses a database from a newer schema."""
    from alembic import command

    url = url or get_settings().db_url
    cfg = _alembic_config(url)
    _refuse_unknown_revision(url, cfg)
    _migrate(url, cfg, lambda: command.upgrade(cfg, revision))
    return current_revision(url)


def downgrade_database(url: str | None, revision: str) -> str | None:
    """Undo migrations down to ``revision`` (``"base"``: an empty schema); returns the revision
    reached. Every migration of this project can be undone; data that only a newer schema can
    hold (e.g. several products of one brand) is folded into what the older one keeps."""
    from alembic import command

    url = url or get_settings().db_url
    cfg = _alembic_config(url)
    _refuse_unknown_revision(url, cfg)
    _migrate(url, cfg, lambda: command.downgrade(cfg, revision))
    return current_revision(url)


def _refuse_unknown_revision(url: str, cfg) -> None:
    from alembic.script import ScriptDirectory

    rev = current_revision(url)
    known = {r.revision for r in ScriptDirectory.from_config(cfg).walk_revisions()}
    if rev is not None and rev not in known:
        raise SchemaTooNewError(
            f"database {_describe_url(url)} is at schema revision {rev}, which this version of "
            "skuaudit does not know (it was migrated by a newer release); upgrade skuaudit"
        )


def _migrate(url: str, cfg, run) -> None:
    """Run an Alembic command on one connection, in one transaction."""
    engine = get_engine(url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            run()
    except OperationalError as exc:
        raise DatabaseError(_operational_message(url, exc)) from exc
    except SQLAlchemyError as exc:
        raise DatabaseError(f"migrating {_describe_url(url)} failed: {exc}") from exc
