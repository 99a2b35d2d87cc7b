"""Make the audit log append-only in the database itself, not only in the ORM model.

``AuditEntry.save``/``delete`` refuse changes, but a queryset ``update()``/``delete()`` or a
stray SQL statement would not pass through them. Triggers refuse any UPDATE or DELETE on
``audit_entry`` for every client of the database (SQLite and PostgreSQL). Idempotent; run at
every API start after the schema exists. A database owner can still drop the trigger — that
needs the owner's credentials, which the API should not run with in production.
"""

from __future__ import annotations

from tortoise import Tortoise

_SQLITE = (
    "CREATE TRIGGER IF NOT EXISTS audit_entry_no_update BEFORE UPDATE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_entry_no_delete BEFORE DELETE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only'); END",
)
_POSTGRES = (
    "CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_entry is append-only' "
    "USING ERRCODE = 'insufficient_privilege'; END $$",
    # OR REPLACE (PostgreSQL 14+): several API processes may start at once.
    "CREATE OR REPLACE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry "
    "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()",
)


async def harden_audit_log() -> None:
    conn = Tortoise.get_connection("default")
    statements = _SQLITE if conn.capabilities.dialect == "sqlite" else _POSTGRES
    for sql in statements:
        await conn.execute_script(sql)
