"""The store behaves alike on SQLite and PostgreSQL: the migrations build the same schema from
nothing on both, integers are 64-bit on both, and a lookup no row can match finds nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import BigInteger, Integer, inspect, text

from corral.store.store import Store
from tests.conftest import BACKENDS
from tests.support.postgres import PostgresServer

BIG = 2**40  # past PostgreSQL's INTEGER, well within SQLite's


@pytest.fixture(params=BACKENDS)
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store on a database no migration has touched: a new install."""
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'state.db'}")
        yield store
        store.close()
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.new_database(migrated=False)
    store = Store(server.url(name))
    yield store
    store.close()
    server.drop_database(name)


def test_the_migrations_build_the_schema_from_nothing_and_running_them_again_changes_nothing(
    empty_store: Store,
) -> None:
    empty_store.migrate()
    tables = set(inspect(empty_store.engine).get_table_names())
    assert {"jobs", "runs", "tasks", "events", "agents", "tokens", "leadership"} <= tables
    empty_store.migrate()
    assert set(inspect(empty_store.engine).get_table_names()) == tables


def test_masters_starting_at_once_on_a_new_database_migrate_it_once_and_all_start(
    empty_store: Store,
) -> None:
    """Several masters started together on a new store (three on PostgreSQL, as a fresh
    install of a cluster): one migrates, the others wait for it and find nothing to do."""
    others = [Store(empty_store.url) for _ in range(2)]
    start = threading.Barrier(3)

    def migrate(store: Store) -> None:
        start.wait()
        store.migrate()

    try:
        with ThreadPoolExecutor(3) as pool:
            for done in [pool.submit(migrate, s) for s in (empty_store, *others)]:
                done.result()
    finally:
        for s in others:
            s.close()
    with empty_store.engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    assert len(versions) == 1
    assert "tasks" in inspect(empty_store.engine).get_table_names()


def test_every_integer_column_holds_64_bits(empty_store: Store) -> None:
    empty_store.migrate()
    narrow = [
        f"{table}.{column['name']}"
        for table in inspect(empty_store.engine).get_table_names()
        for column in inspect(empty_store.engine).get_columns(table)
        if isinstance(column["type"], Integer) and not isinstance(column["type"], BigInteger)
    ]
    if empty_store.engine.dialect.name == "sqlite":
        return  # SQLite's INTEGER is 64-bit whatever a column is declared as
    assert narrow == []


def test_a_run_number_past_two_to_the_31_is_stored_and_found(store_url: str) -> None:
    store = Store(store_url)
    store.migrate()
    with store.tx() as tx:
        tx.insert_run(job="big", number=BIG, state="PENDING", total=1, created_at=0.0)
        tx.add_event(time=0.0, type="run_state", job="big", run=BIG)
    assert [r["number"] for r in store.runs("big", BIG)] == [BIG]
    assert store.runs("big", BIG + 1) == []
    assert [e["run"] for e in store.events_since(0)] == [BIG]
    assert store.events_since(BIG) == []
    store.close()


def test_a_lookup_by_a_name_holding_a_nul_byte_finds_nothing(store_url: str) -> None:
    store = Store(store_url)
    store.migrate()
    assert store.job("a\x00b") is None
    assert store.jobs(owner="\x00") == []
    assert store.task("\x00") is None
    store.close()


def test_connections_opening_a_new_sqlite_file_together_all_open_it(tmp_path: Path) -> None:
    """Each new connection puts the file in WAL mode; the switch needs an exclusive lock, and
    SQLite refuses at once one of two connections asking together. Twenty new files, three
    connections each at once: a refusal not asked again showed in about one file in six."""
    for round_ in range(20):
        url = f"sqlite:///{tmp_path / f'state-{round_}.db'}"
        stores = [Store(url) for _ in range(3)]
        start = threading.Barrier(3)

        def connect(store: Store, start: threading.Barrier = start) -> str:
            start.wait()
            with store.engine.connect() as conn:
                return str(conn.execute(text("PRAGMA journal_mode")).scalar())

        try:
            with ThreadPoolExecutor(3) as pool:
                modes = list(pool.map(connect, stores))
        finally:
            for s in stores:
                s.close()
        assert modes == ["wal"] * 3
