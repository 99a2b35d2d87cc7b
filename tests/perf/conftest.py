"""The oversight suite's cloud fixture (real app, SQLite and PostgreSQL) for these tests."""

from tests.oversight.conftest import cloud, db_url, terminal_ca  # noqa: F401
