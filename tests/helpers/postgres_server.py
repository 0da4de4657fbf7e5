"""The PostgreSQL server tests use: a database per test, made from a migrated template.

Each test run names its databases ``s3sync_test_<pid>_<random>_…``, so runs on one server never
meet; a test's database is dropped after it, and whatever a run leaves is dropped at its end.
``CREATE DATABASE … TEMPLATE`` copies the migrated, empty template in a few tens of ms.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from sync_service.store.postgres_backend import PostgresDatabase
from tests.helpers.waiting import wait_for

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def with_database(url: str, name: str) -> str:
    """``url`` pointing at the database ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


class PostgresServer:
    """A reachable server, and the databases this test run made on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"s3sync_test_{os.getpid()}_{secrets.token_hex(3)}"
        self._numbers = itertools.count(1)
        self._admin: psycopg.Connection[Any] = psycopg.connect(url, autocommit=True, connect_timeout=5)
        self.template = f"{self.prefix}_template"
        self._admin.execute(f'CREATE DATABASE "{self.template}"')
        PostgresDatabase(with_database(url, self.template)).close()  # migrated once

    def new_database(self) -> str:
        """A fresh, migrated, empty database; its URL."""
        name = f"{self.prefix}_{next(self._numbers)}"

        def created() -> bool:
            try:
                self._admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
                return True
            except psycopg.errors.ObjectInUse:  # the template's last session is still ending
                return False

        wait_for(created, 5, f"the template {self.template} free to copy", interval=0.1)
        return with_database(self.url, name)

    def drop(self, url: str) -> None:
        """Drop a database made by ``new_database`` (ending any session still on it)."""
        name = urlsplit(url).path.lstrip("/")
        self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Drop every database of this run, and disconnect."""
        names = [row[0] for row in self._admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{self.prefix}%",))]
        for name in names:
            self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin.close()


class OwnPostgres:
    """A PostgreSQL server of one test's own (initdb as user ``postgres``, trust auth, a free
    port on 127.0.0.1), which the test may kill with -9 and start again on the same data."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bin = _postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="own-postgres-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        shutil.chown(self.root, "postgres")
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "initdb"), "-D", str(self.data),
                        "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, timeout=120)

    def url(self, password: str = "") -> str:
        """The URL of its ``postgres`` database (a password is accepted and ignored: trust)."""
        secret = f":{password}" if password else ""
        return f"postgresql://postgres{secret}@127.0.0.1:{self.port}/postgres"

    def start(self) -> OwnPostgres:
        """Start the server and wait until it answers."""
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", str(self.bin / "postgres"), "-D", str(self.data),
             "-p", str(self.port), "-k", str(self.root), "-c", "listen_addresses=127.0.0.1",
             "-c", "fsync=off", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        process = self.process

        def answering() -> bool:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return True
            except psycopg.OperationalError as exc:
                if process.poll() is not None:
                    raise RuntimeError(f"own PostgreSQL exited: {self.log.read_text()[-2000:]}") from exc
                return False

        wait_for(answering, 60, f"own PostgreSQL answering (log {self.log})", interval=0.1)
        return self

    def kill(self) -> None:
        """Kill -9 the server and every process of it, and wait until they are gone."""
        if self.process is None:
            return
        pid_file = self.data / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else self.process.pid
        victims = [postmaster, *_children(postmaster)]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        wait_for(lambda: not any(_alive(pid) for pid in victims), 30, "the killed server's processes gone")
        self.process = None

    def close(self) -> None:
        """Kill it and delete its files."""
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql")
    return found[-1].parent


def _children(parent: int) -> list[int]:
    """The processes whose parent is ``parent``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False
