"""Grace periods for vanished participants: a terminal whose link dropped, a teller whose
screen disconnected.

The MQTT link reports terminals going offline (their last will) and coming back; the
teller WebSocket reports its last connection closing and a new one opening. ``Watch``
keeps one ``Absences`` clock for each and, once a grace period is over, ends what the
missing party was needed for:

- a terminal still offline after ``terminal_grace`` s: each of its live sessions fails
  with cause "terminal link lost" (a waiting customer is gone too, not only a call);
- a teller still without a connection after ``teller_grace`` s (a rejoin of their call's
  media restarts it): their call is hung up
  with cause "teller disconnected" (a normal hang-up, so the recording is archived); an
  available teller without a call goes offline, so calls are not offered to nobody.

Who is missing since when is kept in the database (``keep``: ``store.keep_absences``, at
every check, so at most one check interval late), and a desk taking over adopts it
(``adopt``): a party missing before the takeover keeps its deadline and gets the rest of
its grace period, not a new one (the new leader's own marks, e.g. from the retained
"offline" status it reads again, do not move an earlier one).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from cloud.sessions.absence import Absences
from cloud.sessions.desk import Desk
from cloud.sessions.errors import SessionError
from cloud.sessions.outbox import Outbox
from cloud.sessions.routing import ON_DUTY, TellerState
from common.periodic import run_every

log = logging.getLogger("cuntong.desk.watch")

TERMINAL_LOST = "terminal link lost"
TELLER_GONE = "teller disconnected"

#: Where the marks go: (marked: ``terminal:<id>``/``teller:<id>`` -> since, cleared ids).
KeepAbsences = Callable[[dict[str, float], list[str]], Awaitable[None]]


class Watch:
    def __init__(
        self,
        desk: Desk,
        outbox: Outbox,
        clock: Callable[[], datetime],
        terminal_grace: float = 30.0,
        teller_grace: float = 30.0,
        keep: KeepAbsences | None = None,
    ) -> None:
        self.desk = desk
        self.outbox = outbox
        self.clock = clock
        self.terminals = Absences(terminal_grace)
        self.tellers = Absences(teller_grace)
        self.keep = keep
        self._kept: dict[str, float] = {}

    def adopt(self, marks: Mapping[str, float]) -> None:
        """Take over the marks a previous desk's watch kept (``terminal:<id>``/
        ``teller:<id>`` -> when they went missing): a terminal that still has a live
        session on the desk, a teller on duty on the board. Call after ``Desk.adopt``."""
        tellers = self.desk.board.tellers
        for who, since in marks.items():
            kind, _, ident = who.partition(":")
            if kind == "terminal" and self.desk.live_sessions_of_terminal(ident):
                self.terminals.since[ident] = since
            elif kind == "teller" and ident in tellers and tellers[ident].state in ON_DUTY:
                self.tellers.since[ident] = since
        self._kept = dict(marks)

    def marks(self) -> dict[str, float]:
        """Who is missing now, since when (``terminal:<id>``/``teller:<id>``)."""
        return {
            **{f"terminal:{t}": since for t, since in self.terminals.since.items()},
            **{f"teller:{t}": since for t, since in self.tellers.since.items()},
        }

    async def sync(self) -> None:
        """Store what changed since the last sync (``keep``)."""
        if self.keep is None:
            return
        now = self.marks()
        marked = {k: v for k, v in now.items() if self._kept.get(k) != v}
        cleared = [k for k in self._kept if k not in now]
        if marked or cleared:
            await self.keep(marked, cleared)
        self._kept = now

    def _now(self) -> float:
        return self.clock().timestamp()

    def terminal_offline(self, terminal_id: str) -> None:
        if self.desk.live_sessions_of_terminal(terminal_id):
            self.terminals.gone(terminal_id, self._now())

    def terminal_online(self, terminal_id: str) -> None:
        if self.terminals.back(terminal_id):
            log.info("terminal %s is back within its grace period", terminal_id)

    def teller_left(self, teller_id: str) -> None:
        """A teller's connection closed; they are missing once no other one is open."""
        if not self.outbox.connected(teller_id):
            self.tellers.gone(teller_id, self._now())

    def teller_joined(self, teller_id: str) -> None:
        self.tellers.back(teller_id)

    def teller_rejoined(self, teller_id: str) -> None:
        """The teller took their call's media back (a reloaded page): they are there now.
        Without an open connection their grace period starts again from now, so a page
        that never reconnects its event stream is still hung up in the end."""
        self.tellers.back(teller_id)
        if not self.outbox.connected(teller_id):
            self.tellers.gone(teller_id, self._now())

    async def check(self) -> None:
        """Store who is missing (``sync``), then end what the grace periods no longer
        cover."""
        await self.sync()
        now = self._now()
        for terminal_id in self.terminals.due(now):
            for session_id in self.desk.live_sessions_of_terminal(terminal_id):
                await self._end(self.desk.fail(session_id, TERMINAL_LOST), session_id)
        for teller_id in self.tellers.due(now):
            if self.outbox.connected(teller_id):
                continue
            call = self.desk.call_of_teller(teller_id)
            if call is not None:
                await self._end(self.desk.hang_up(call, TELLER_GONE), call)
            elif self.desk.board.tellers[teller_id].state is TellerState.AVAILABLE:
                # Nobody is there to answer: stop offering them calls.
                await self._end(self.desk.teller_state(teller_id, TellerState.OFFLINE), "-")
        await self.sync()  # those just ended are no longer missing

    @staticmethod
    async def _end(action: Awaitable[None], session_id: str) -> None:
        try:
            await action
        except SessionError as err:  # it ended some other way meanwhile
            log.info("%s: %s", session_id, err)

    async def run(self, every: float = 0.5) -> None:
        await run_every(self.check, every, name="grace-period check", first_wait=True, logger=log)
