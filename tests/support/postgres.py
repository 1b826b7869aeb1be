"""A real PostgreSQL for the tests: Debian's ``postgresql`` package, started by the test session
in a temporary directory as the ``postgres`` user (PostgreSQL refuses to run as root), listening
on a unix socket in that directory only, so it never meets another server on this machine.

One server serves the whole session; each test gets a database of its own, already migrated
to the newest schema: copied from a template (``CREATE DATABASE … TEMPLATE``) the first time,
then emptied after each test and handed to the next one (emptying takes a few milliseconds,
copying a few hundred).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from corral.store.store import Store

INSTALL = "install Debian's postgresql (apt-get install postgresql)"
TEMPLATE = "corral_template"
# Speed over durability: a test database is thrown away, and a crash of the machine with it.
FAST = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def binaries() -> Path | None:
    """The bin directory of the newest PostgreSQL Debian installed, or None."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


class PostgresServer:
    """A PostgreSQL server of its own in ``root``, reached on a unix socket there."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin = bin_dir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self._names = itertools.count(1)
        self._spare: list[str] = []  # migrated databases emptied after their test

    def _as_owner(self, *args: str) -> list[str]:
        """A command run as the server's owner: ``postgres`` when we are root."""
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _run(self, *args: str) -> None:
        subprocess.run(self._as_owner(*args), check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        """Create the cluster: C collation (names sort as on SQLite), UTF-8, trust on the
        socket only."""
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        """Start the server (again) and wait until it accepts connections."""
        options = [
            "-c listen_addresses=''",
            f"-c unix_socket_directories='{self.root}'",
            "-c max_connections=300",
            *(f"-c {o}" for o in FAST),
        ]
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session at once, as a database going down."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str) -> str:
        """The URL a user would give ``--db`` for a database of this server."""
        return f"postgresql://postgres@/{database}?host={self.root}"

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=str(self.root), user="postgres", dbname="postgres", autocommit=True
        )

    def create_template(self) -> None:
        """The database every test database is copied from: migrated to the newest schema."""
        with self._admin() as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        store = Store(self.url(TEMPLATE))
        try:
            store.migrate()
        finally:
            store.close()

    def new_database(self, migrated: bool = True) -> str:
        """A new database (migrated, or empty as a new install's); answers its name."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        template = TEMPLATE if migrated else "template0"
        with self._admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return name

    def take_database(self) -> str:
        """A migrated database with no rows, for one test; give it back with
        ``give_back``."""
        return self._spare.pop() if self._spare else self.new_database()

    def give_back(self, name: str) -> None:
        """Empty a test's database for the next test: end the sessions the test left open,
        delete every row, restart the sequences. A database that cannot be emptied so is
        dropped instead."""
        with self._admin() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        try:
            with psycopg.connect(
                host=str(self.root), user="postgres", dbname=name, autocommit=True
            ) as conn:
                tables = conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                ).fetchall()
                sequences = conn.execute(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
                ).fetchall()
                with conn.transaction():
                    for (table,) in tables:
                        conn.execute(f'DELETE FROM "{table}"')
                    for (sequence,) in sequences:
                        conn.execute(f'ALTER SEQUENCE "{sequence}" RESTART')
        except psycopg.Error:
            self.drop_database(name)
            return
        self._spare.append(name)

    def drop_database(self, name: str) -> None:
        """Remove a database, ending whatever sessions it left open."""
        with self._admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def start_server() -> PostgresServer | None:
    """A new server in a new temporary directory, or None if PostgreSQL is not installed."""
    bin_dir = binaries()
    if bin_dir is None:
        return None
    # Directly under /tmp: the socket's path must stay short, and the postgres user must be
    # able to reach it (pytest's own temporary directories are private to us).
    root = Path(tempfile.mkdtemp(prefix="corral-pg-"))
    server = PostgresServer(bin_dir, root)
    server.init()
    server.start()
    server.create_template()
    return server


def remove_server(server: PostgresServer) -> None:
    """Stop the server and remove its directory."""
    try:
        with contextlib.suppress(subprocess.CalledProcessError):  # a test left it stopped
            server.stop("immediate")
    finally:
        shutil.rmtree(server.root, ignore_errors=True)
