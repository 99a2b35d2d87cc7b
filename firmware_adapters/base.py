"""What every peripheral adapter shares: lifecycle, health counters and self-test results.

Health is derived from counters rather than stored, so the edge agent can put the same
numbers in telemetry: "absent" when the device cannot be opened, "fault" after three
failures in a row, "degraded" after one, "ok" otherwise. Customer actions (no card, card
pulled, PIN entry cancelled) are normal outcomes, not device faults.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Literal, Protocol, Self

from firmware_adapters.errors import CardAbsent, DeviceAbsent, EntryCancelled, PeripheralError

HealthState = Literal["ok", "degraded", "fault", "absent"]

#: Failures in a row after which a device counts as faulty rather than degraded.
FAULT_THRESHOLD = 3

#: Errors that describe what the customer did, not what the device did.
CUSTOMER_OUTCOMES: tuple[type[PeripheralError], ...] = (CardAbsent, EntryCancelled)


@dataclass
class HealthCounters:
    """Running counts for one adapter; mutated only by `AdapterBase.operation`."""

    operations: int = 0
    faults: int = 0
    consecutive_faults: int = 0
    recoveries: int = 0
    absent: bool = True
    last_error: str | None = None

    def record_ok(self) -> None:
        self.operations += 1
        if self.consecutive_faults:
            self.recoveries += 1
        self.consecutive_faults = 0
        self.absent = False

    def record_fault(self, err: PeripheralError) -> None:
        self.operations += 1
        self.faults += 1
        self.consecutive_faults += 1
        self.absent = isinstance(err, DeviceAbsent)
        self.last_error = f"{type(err).__name__}: {err}"


def health_state(counters: HealthCounters) -> HealthState:
    """The one-word health the fleet dashboards show for these counters."""
    if counters.absent:
        return "absent"
    if counters.consecutive_faults >= FAULT_THRESHOLD:
        return "fault"
    if counters.consecutive_faults:
        return "degraded"
    return "ok"


@dataclass(frozen=True)
class HealthReport:
    """A snapshot of one adapter's health for telemetry."""

    name: str
    kind: str
    state: HealthState
    operations: int
    faults: int
    consecutive_faults: int
    recoveries: int
    last_error: str | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class SelfTestResult:
    """Outcome of one adapter's self-test."""

    name: str
    kind: str
    passed: bool
    detail: str
    latency_ms: float


class Adapter(Protocol):
    """The interface the registry, the self-test and the edge agent rely on."""

    name: str
    kind: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def self_test(self) -> SelfTestResult: ...
    def health(self) -> HealthReport: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class AdapterBase:
    """Lifecycle and health bookkeeping; subclasses implement open / close / self_test."""

    kind = "peripheral"

    def __init__(self, name: str) -> None:
        self.name = name
        self.counters = HealthCounters()

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def operation(self) -> AsyncIterator[None]:
        """Wrap one device operation so its outcome lands in the health counters."""
        try:
            yield
        except CUSTOMER_OUTCOMES:
            self.counters.record_ok()
            raise
        except PeripheralError as err:
            self.counters.record_fault(err)
            raise
        self.counters.record_ok()

    def result(self, passed: bool, detail: str, started: float) -> SelfTestResult:
        """A self-test result timed from `started` (a `time.perf_counter()` reading)."""
        ms = (time.perf_counter() - started) * 1e3
        return SelfTestResult(self.name, self.kind, passed, detail, ms)

    def health(self) -> HealthReport:
        c = self.counters
        return HealthReport(
            name=self.name,
            kind=self.kind,
            state=health_state(c),
            operations=c.operations,
            faults=c.faults,
            consecutive_faults=c.consecutive_faults,
            recoveries=c.recoveries,
            last_error=c.last_error,
        )
