"""The HTTP edge every API router shares: parameter limits and one error shape.

Path and query parameters are checked by FastAPI before a handler runs, so an over-long id or
an absurd page number is a 422 naming the parameter, never a database error (a 500). Use the
``Annotated`` aliases here rather than bare ``str``/``int``:

    async def get_terminal(terminal_id: TerminalIdPath) -> ...

Errors have one shape, the one the OpenAPI schema documents: ``{"detail": <text>}`` for
every status, except 422 where ``detail`` is a list of ``{"loc", "msg", "type"}`` (FastAPI's
``HTTPValidationError``), also when a handler raises ``HTTPException(422, "text")``.
``install_error_handlers(app)`` makes it so, and turns a value the database refuses (an id
longer than its column) into such a 422 instead of a 500.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "ID_MAX",
    "AccountIdPath",
    "BatchPath",
    "ClaimIdPath",
    "CommandIdPath",
    "IntIdPath",
    "NamePath",
    "Page",
    "RolloutIdPath",
    "SessionIdPath",
    "StateQuery",
    "TerminalIdPath",
    "TerminalIdQuery",
    "install_error_handlers",
    "validation_error",
]

#: The longest id any table stores (terminal, account, session, group: 64 characters).
ID_MAX = 64
#: A terminal id as MQTT topics allow it (common.topics).
TERMINAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
#: Ids the cloud makes itself, and names people choose (accounts, groups): printable ASCII.
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"

TerminalIdPath = Annotated[str, Path(max_length=ID_MAX, pattern=TERMINAL_ID_PATTERN)]
TerminalIdQuery = Annotated[
    str | None, Query(max_length=ID_MAX, pattern=TERMINAL_ID_PATTERN, description="terminal id")
]
AccountIdPath = Annotated[str, Path(max_length=ID_MAX, pattern=_ID_PATTERN)]
SessionIdPath = Annotated[str, Path(max_length=ID_MAX, pattern=_ID_PATTERN)]
NamePath = Annotated[str, Path(max_length=ID_MAX, pattern=_ID_PATTERN)]
#: fleet command ids and broadcast batches are 32 characters (fleet.models.Command).
CommandIdPath = Annotated[str, Path(max_length=32, pattern=_ID_PATTERN)]
BatchPath = Annotated[str, Path(max_length=32, pattern=_ID_PATTERN)]
#: rollout ids are 16 characters (fleet.models.Rollout).
RolloutIdPath = Annotated[str, Path(max_length=16, pattern=_ID_PATTERN)]
#: Factory claim ids are 16 hex characters (provisioning.claims); 32 is the column.
ClaimIdPath = Annotated[str, Path(max_length=32, pattern=_ID_PATTERN)]
#: A numeric row id (alerts): inside a signed 64-bit column.
IntIdPath = Annotated[int, Path(ge=1, le=2**63 - 1)]
#: A state filter (commands, rollout targets): the longest state is 12 characters.
StateQuery = Annotated[str | None, Query(max_length=12, pattern=r"^[a-z_]+$")]
#: 1-based page number; the bound keeps ``(page - 1) * page_size`` inside a 64-bit offset.
Page = Annotated[int, Query(ge=1, le=1_000_000)]


def validation_error(msg: str, loc: tuple[str | int, ...] = (), kind: str = "value_error") -> Any:
    """The ``detail`` of a 422, in the schema's list shape."""
    return [{"loc": list(loc), "msg": msg, "type": kind}]


async def _http_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 422 and isinstance(exc.detail, str):
        exc = HTTPException(422, validation_error(exc.detail), exc.headers)
    return await http_exception_handler(request, exc)


async def _refused_by_database(request: Request, exc: Exception) -> JSONResponse:
    # Tortoise checks a value against its column (max_length, range) before sending it: a
    # value that got past the edge's limits is still the caller's mistake, not ours.
    return JSONResponse({"detail": validation_error(str(exc))}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """One error shape for the whole app (see the module docstring)."""
    from tortoise.exceptions import ValidationError as ColumnError

    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ColumnError, _refused_by_database)
