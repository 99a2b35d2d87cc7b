"""Find the rows a store refuses, without holding up the rows it takes.

A batch write that fails on a *data* error (a value the database cannot hold, a row the
telemetry store answers 4xx to) is split in halves until each refused row stands alone;
everything else lands. Any other error (store down, connection lost, disk full) is
raised unchanged so the whole batch is retried: splitting would only turn an outage into
dead letters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg
from influxdb_client.rest import ApiException
from tortoise.exceptions import IntegrityError, ValidationError

Row = TypeVar("Row")

_DATA_ERRORS = (
    ValueError,
    OverflowError,
    TypeError,
    IntegrityError,
    ValidationError,
    asyncpg.DataError,
)


def is_data_error(err: BaseException) -> bool:
    """True when ``err`` says the rows were bad, not that the store was unavailable."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, _DATA_ERRORS):
            return True
        if isinstance(seen, ApiException) and 400 <= (seen.status or 0) < 500:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def write_isolating(
    rows: Sequence[Row], write: Callable[[Sequence[Row]], Awaitable[None]]
) -> list[tuple[Row, BaseException]]:
    """Write ``rows``; return the ones refused on their own, each with its error."""
    if not rows:
        return []
    try:
        await write(rows)
    except Exception as err:
        if not is_data_error(err):
            raise
        if len(rows) == 1:
            return [(rows[0], err)]
        half = len(rows) // 2
        first = await write_isolating(rows[:half], write)
        return first + await write_isolating(rows[half:], write)
    return []
