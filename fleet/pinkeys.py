"""PIN key rotation: a new working key for every keyed PIN pad, on a schedule, through the fleet.

Each beat (daily by default, ``FleetSettings.pin_key_rotation_s``, or at once on an operator's
``POST /api/v1/fleet/pin-keys/rotate``), for each terminal known to the cloud whose master key is in
the HSM as ``TMK:<terminal>``:

1. the HSM makes a new TPK and exports it under that TMK; it keeps it as ``TPK:<terminal>.next``
   while ``TPK:<terminal>`` stays the current key (``HsmClient.stage_rotation``);
2. a signed ``pinpad_load_working_key`` command carries the encrypted key and its KCV (never a
   clear key); the agent loads it and the pad checks the KCV (``edge.handlers.pinpad``);
3. on the reply (``on_result``): a success whose KCV matches the staged key promotes it to
   ``TPK:<terminal>`` (the old key is destroyed); a refusal, a mismatch or a timeout discards it
   and the old key stays. Until then the HSM translates a block under either key, so a PIN
   entered during the rotation still translates.

Every step is in the audit log (actor ``fleet:pin-keys``). A terminal with a load command
still queued or sent is skipped; a staged key left by a beat that could not settle (the HSM
was down at the reply) is settled from the last command's outcome before a new one is made.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from cloud import Terminal, audit, fenced
from common.periodic import run_every
from fleet import lifecycle as lc
from fleet.models import FleetCommand
from fleet.store import enqueue
from hsm import HsmClient

log = logging.getLogger("cuntong.fleet.pinkeys")

LOAD = "pinpad_load_working_key"
ACTOR = "fleet:pin-keys"
#: The pad's slots: the master key and the PIN key (docs/transactions.md, key hierarchy).
MASTER_SLOT, PIN_SLOT = 0, 1
_OPEN = [lc.State.QUEUED.value, lc.State.SENT.value]


def tmk(terminal_id: str) -> str:
    return f"TMK:{terminal_id}"


def tpk(terminal_id: str) -> str:
    return f"TPK:{terminal_id}"


def confirmed(state: str, result: dict[str, object], staged_kcv: str) -> bool:
    """The pad answered with the KCV of the key the HSM staged (the pad gives 8 bytes of it,
    the HSM the first 3)."""
    loaded = result.get("kcv")
    return (
        state == lc.State.SUCCEEDED.value
        and isinstance(loaded, str)
        and loaded.upper().startswith(staged_kcv.upper())
    )


class PinKeyRotation:
    def __init__(
        self,
        hsm: HsmClient,
        kick: Callable[[], None],
        clock: Callable[[], dt.datetime],
        interval_s: float,
    ) -> None:
        self.hsm = hsm
        self.kick = kick
        self.clock = clock
        self.interval_s = interval_s
        self.wake = asyncio.Event()

    async def run(self) -> None:
        try:
            await run_every(
                self.rotate_all, self.interval_s, name="PIN key rotation",
                wake=self.wake, first_wait=True, logger=log,
            )  # fmt: skip
        finally:
            await self.hsm.aclose()

    async def rotate_all(self) -> list[str]:
        """Stage and send a new key to every keyed terminal not already rotating; their ids."""
        keys = await self.hsm.keys()
        keyed = [k.name[4:] for k in keys if k.kind == "TMK" and k.name.startswith("TMK:")]
        rows = await Terminal.filter(id__in=keyed).values_list("id", flat=True)
        known = {str(tid) for tid in rows}
        rows = await FleetCommand.filter(
            name=LOAD, terminal_id__in=list(known), state__in=_OPEN
        ).values_list("terminal_id", flat=True)
        busy = {str(tid) for tid in rows}
        sent: list[str] = []
        for tid in sorted(known - busy):
            if await self.hsm.pending_kcv(tpk(tid)) is not None and not await self._settle(tid):
                continue
            staged = await self.hsm.stage_rotation(tpk(tid), tmk(tid))
            assert staged.encrypted is not None
            args = {
                "encrypted_key": staged.encrypted.hex().upper(),
                "kcv": staged.kcv,
                "master_slot": MASTER_SLOT,
                "slot": PIN_SLOT,
            }
            now = self.clock()
            # Fenced: a paused old leader's command is refused (LeaseLost); the key it
            # staged has no command, so the next leader's ``_settle`` discards it.
            async with fenced():
                [cid] = await enqueue([tid], LOAD, args, now)
                await audit.record(ACTOR, "pin_key_rotation_sent", tid, now, kcv=staged.kcv,
                                   command_id=cid)  # fmt: skip
            sent.append(tid)
        if sent:
            self.kick()
        return sent

    async def _settle(self, tid: str) -> bool:
        """A staged key with no command in flight: settle it from the last command's outcome.
        True when the terminal is free for a new rotation."""
        staged = await self.hsm.pending_kcv(tpk(tid))
        last = await FleetCommand.filter(name=LOAD, terminal_id=tid).order_by("-created_at").first()
        if last is not None and str(last.args.get("kcv", "")).upper() == staged:
            await self.on_result(last)
        else:  # staged, but its command was never queued: the pad never saw the key
            await self.hsm.discard_rotation(tpk(tid))
        return await self.hsm.pending_kcv(tpk(tid)) is None

    async def on_result(self, row: FleetCommand) -> None:
        """The command closed (answered, timed out or expired): switch the HSM or keep the old."""
        name, now = tpk(row.terminal_id), self.clock()
        staged = await self.hsm.pending_kcv(name)
        result = row.result if isinstance(row.result, dict) else {}
        if staged is None:
            await audit.record(ACTOR, "pin_key_rotation_orphan", row.terminal_id, now,
                               command_id=row.id, state=row.state)  # fmt: skip
            return
        if staged != str(row.args.get("kcv", "")).upper():
            return  # a reply to an older key's command; the staged key has its own
        if confirmed(row.state, result, staged):
            info = await self.hsm.promote(name)
            await audit.record(ACTOR, "pin_key_rotated", row.terminal_id, now,
                               kcv=info.kcv, command_id=row.id)  # fmt: skip
            return
        await self.hsm.discard_rotation(name)
        await audit.record(
            ACTOR, "pin_key_rotation_failed", row.terminal_id, now, command_id=row.id,
            state=row.state, error=str(result.get("error", "")), pad_kcv=result.get("kcv"),
        )  # fmt: skip
