"""The PostgreSQL server tests use: a database per test, made from a migrated template.

Each test run names its databases ``s3sync_test_<pid>_<random>_…``, so runs on one server never
meet; a test's database is dropped after it, and whatever a run leaves is dropped at its end.
``CREATE DATABASE … TEMPLATE`` copies the migrated, empty template in a few tens of ms.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from sync_service.store.postgres_backend import PostgresDatabase

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
        for attempt in range(50):
            try:
                self._admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
                break
            except psycopg.errors.ObjectInUse:  # the template's last session is still ending
                if attempt == 49:
                    raise
                time.sleep(0.1)
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
