"""The PostgreSQL store's names, locations and versioned schema.

A store is one events table, a ``<table>_types`` table of the documentation
versions its events refer to, and a ``<table>_migrations`` table that records
which schema versions were applied. `migrate` runs the missing migrations in
one transaction under a transaction-scoped advisory lock keyed on the table,
so any number of processes may start at once: the first applies each
migration, the others wait for it and then find nothing left to do.

Locations: a ``postgresql://`` (or ``postgres://``) URL whose query may name
the table, ``postgresql://user@host:5432/db?table=events_lms``, or a libpq
``key=value`` string with the table passed separately.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..exceptions import StoreError

if TYPE_CHECKING:
    import psycopg

DEFAULT_TABLE: Final = "events"
_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")


@dataclass(frozen=True)
class Names:
    """The quoted SQL names that belong to one events table."""

    schema: str | None
    table: str

    @classmethod
    def parse(cls, table: str) -> Names:
        """``events`` or ``schema.events``; ValueError says what a valid name looks like."""
        parts = table.split(".") if isinstance(table, str) else []
        if not 1 <= len(parts) <= 2 or not all(_PART.fullmatch(part) for part in parts):
            raise ValueError(
                f"table must be NAME or SCHEMA.NAME of letters, digits and _ (at most 48 "
                f"characters each, not starting with a digit), not {table!r}"
            )
        return cls(parts[0] if len(parts) == 2 else None, parts[-1])

    def _qualified(self, name: str) -> str:
        return f'"{self.schema}"."{name}"' if self.schema else f'"{name}"'

    @property
    def events(self) -> str:
        """The events table, quoted and qualified."""
        return self._qualified(self.table)

    @property
    def migrations(self) -> str:
        """The version table, quoted and qualified."""
        return self._qualified(f"{self.table}_migrations")

    @property
    def types(self) -> str:
        """The table of documentation versions, quoted and qualified."""
        return self._qualified(f"{self.table}_types")

    @property
    def regclass(self) -> str:
        """The events table as text for ``to_regclass``."""
        return self.events

    @property
    def lock_key(self) -> str:
        """The text whose hash keys the advisory lock taken while migrating."""
        return f"eventtracking.schema:{self.schema or ''}.{self.table}"

    def index(self, suffix: str) -> str:
        """An index or constraint name (unqualified: it lives in the table's schema)."""
        return f'"{self.table}_{suffix}"'


def split_location(location: str, table: str | None = None) -> tuple[str, str]:
    """(libpq conninfo, table) for a URL or key=value string; ``?table=`` is removed.

    ValueError when the URL and the `table` argument name different tables.
    """
    from_url = None
    if location.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(location)
        query = parse_qsl(parts.query, keep_blank_values=True)
        from_url = next((value for key, value in query if key == "table"), None)
        rest = urlencode([(key, value) for key, value in query if key != "table"])
        location = urlunsplit(parts._replace(query=rest))
    if from_url is not None and table is not None and from_url != table:
        raise ValueError(f"the URL names table {from_url!r} but table={table!r} was passed")
    return location, from_url or table or DEFAULT_TABLE


def describe(conninfo: str) -> str:
    """``user@host:port/dbname`` for messages, without the password."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(conninfo)
    except Exception:
        return "PostgreSQL (unparsable connection string)"
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{info.get('host') or 'localhost'}{port}/{info.get('dbname') or ''}"


@dataclass(frozen=True)
class Migration:
    """One schema step: `statements` are formatted with ``t`` (a `Names`)."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: Final = (
    Migration(
        1,
        "events table with indexes on id, (name, ts) and ts",
        (
            """CREATE TABLE {t.events} (
                seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id      text NOT NULL,
                name    text NOT NULL,
                ts      timestamptz NOT NULL,
                data    jsonb,
                context jsonb,
                extra   jsonb,
                CONSTRAINT {id_key} UNIQUE (id)
            )""",
            "CREATE INDEX {name_ts} ON {t.events} (name, ts)",
            "CREATE INDEX {ts} ON {t.events} (ts)",
        ),
    ),
    Migration(
        2,
        "documentation versions the events refer to",
        (
            """CREATE TABLE {t.types} (
                id            text PRIMARY KEY,
                kind          text NOT NULL,
                name          text NOT NULL,
                registered_at timestamptz,
                body          jsonb NOT NULL
            )""",
        ),
    ),
)
SCHEMA_VERSION: Final = MIGRATIONS[-1].version


def _format(statement: str, names: Names) -> str:
    return statement.format(
        t=names, id_key=names.index("id_key"), name_ts=names.index("name_ts"), ts=names.index("ts")
    )


def migrate(
    conn: psycopg.Connection[Any],
    names: Names,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> list[int]:
    """Apply the migrations the table lacks, once, even with concurrent starters.

    Returns the versions applied by this call. StoreError when the table
    exists without a version table, or has a newer schema than `migrations`.
    """
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (names.lock_key,))
        if names.schema:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{names.schema}"')
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {names.migrations} ("
            "version int PRIMARY KEY, description text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {names.migrations}").fetchone()
        current = int(row[0]) if row else 0
        latest = migrations[-1].version if migrations else 0
        if current > latest:
            raise StoreError(
                f"table {names.events} has schema version {current}, newer than this "
                f"eventtracking ({latest}); upgrade eventtracking"
            )
        if current == 0 and _exists(conn, names):
            raise StoreError(
                f"table {names.events} exists but was not created by eventtracking "
                f"(no {names.migrations}); choose another table"
            )
        for migration in migrations:
            if migration.version <= current:
                continue
            for statement in migration.statements:
                conn.execute(_format(statement, names))
            conn.execute(
                f"INSERT INTO {names.migrations} (version, description) VALUES (%s, %s)",
                (migration.version, migration.description),
            )
            applied.append(migration.version)
    return applied


def _exists(conn: psycopg.Connection[Any], names: Names) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (names.regclass,)).fetchone()
    return bool(row and row[0])


def check_schema(conn: psycopg.Connection[Any], names: Names) -> int:
    """The table's schema version; StoreError unless this version of eventtracking reads it."""
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
        (names.regclass, names.migrations),
    ).fetchone()
    if not exists or not exists[0]:
        raise StoreError(
            f"no event table {names.events} in this database; write events first, "
            "or name another table with ?table=NAME"
        )
    if not exists[1]:
        raise StoreError(f"table {names.events} was not created by eventtracking")
    row = conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {names.migrations}").fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"table {names.events} has schema version {version}, newer than this "
            f"eventtracking ({SCHEMA_VERSION}); upgrade eventtracking"
        )
    return version
