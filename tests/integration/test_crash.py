"""Nothing acknowledged is lost when the API dies (issue 14): ingest acknowledges a message
to the broker only once it is stored, so a SIGKILL just after a terminal's event leaves it
queued in ingest's persistent session, and the restarted ingest stores it (once)."""

from __future__ import annotations

from pathlib import Path

from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from tests.crashrig import CrashRig, Round, Tally
from tests.helpers import eventually
from tests.integration.agents import new_id

KILLS = 3


async def test_sigkill_50ms_after_a_message_loses_nothing(
    tmp_path: Path, broker: Broker, victoria: VictoriaMetrics
) -> None:
    rig = CrashRig.start(tmp_path, broker.cfg.port, victoria.url, new_id("KILL"))
    try:
        rounds: list[Round] = []
        for kill in range(KILLS):
            rounds.append(await rig.kill_after_message(kill, delay_s=0.05))

        async def all_stored() -> list[Tally] | None:
            tallies = await rig.tally(rounds)
            return tallies if all(t.lost == 0 for t in tallies) else None

        tallies = await eventually(all_stored, timeout=30)
    finally:
        rig.stop()
    assert all(t.duplicated == 0 for t in tallies), tallies
