"""The oversight suite's cloud fixture (real app, SQLite and PostgreSQL) for these tests."""

from tests.oversight.conftest import cloud, db_url  # noqa: F401
