"""A password reset (high risk) from the customer screen to a verified evidence package, with
both screens in real headless Chromium and every real part together:

- the cloud app as production wires it (desk, Janus with recording, Mosquitto), with the
  bank's HSM card checks (SoftHSM2 service), the core simulator and the identity-gateway
  simulator, each a real child process;
- the real terminal agent (``edge.Agent``) serving its own customer screen, driving its
  configured adapters: the ID reader on the serial simulator (pty), the PIN pad on its
  simulator (pty, keyed from the HSM), the bank card through pcscd + vpcd; its results
  signed with a key enrolled by the CA the cloud trusts;
- the customer, who does what the screen says: taps 先刷身份证 and puts the card down only
  once the screen asks, inserts the bank card and types the new PIN twice when told, sits
  in front of the camera for the face match and acts out each liveness challenge the
  screen shows (the astronaut photograph edited by ``tests.vision.faces``, through the
  agent's real models: there is no camera device here), and signs on the screen's pad;
- the teller, on the teller page: takes the call, asks for every device step from the
  checklist, ends the call with 办结 and sees 成功 with the core's reference; a supervisor
  authorises from the watch page;
- ``cuntong evidence verify`` on the sealed package, with the recording.

The elderly flag on the desk comes from the card read before queueing: the screen's own
"我已满 60 岁" is rewritten to false on its way out, and the offer is still elderly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Page, Route, async_playwright, expect

from cloud.auth import service
from cloud.evidence import package
from cloud.evidence.identity import certificate_pem
from cloud.evidence.keys import public_pem
from cloud.sessions import profiles
from cloud.sessions.models import TellerSession
from cloud.workflow import service as workflow
from common import procs
from cuntong.servers.corebank import CoreBankServer
from cuntong.servers.idcheck import IdentityGateway
from edge.agent import Agent
from edge.liveness import camera_frames
from edge.steps.card import AGAIN_TEXT, NEW_TEXT
from edge.steps.runner import StepRunner
from edge.teller.view import STEP_TEXT
from edge.vision.challenge import PROMPTS
from edge.vision.runtime import ModelSet
from firmware_adapters.camera.adapter import Frame
from firmware_adapters.iccard.pcscd import READER_NAME
from firmware_adapters.iccard.vpcd import VirtualCardSlot
from firmware_adapters.idcard.simulator import IdCardSimulator
from firmware_adapters.pinpad.simulator import PinPadSimulator
from firmware_adapters.pty_server import PtyServer
from idcheck import IdentityClient
from tests.helpers import eventually
from tests.integration.agents import agent_settings
from tests.oversight.conftest import FAST_HASHER, PASSWORD
from tests.screens import CHROMIUM
from tests.steps_rig import enrol
from tests.teller import test_teller_app as rig
from tests.teller.test_teller_app import FLAGS, TELLER, Desked, available
from tests.transactions.card_rig import Bank
from tests.transactions.parts import customer_types
from tests.transactions.test_high_risk_end_to_end import CARD, KEY, gateway  # noqa: F401
from tests.vision.conftest import astronaut, models  # noqa: F401 - fixtures
from tests.vision.faces import acted

pytestmark = rig.pytestmark
desked = rig.desked  # the fixture: the cloud app with desk, Janus, Mosquitto

TID = "SX-HRB-01"
SUP = "sup-zhou"
NEW_PIN = "482915"
ACTION_OF = {text: action for action, text in PROMPTS.items()}
#: The end dialog and the wrap-up as the page holds them (said when 成功 does not come).
ENDING = """() => ({
  dialog: document.getElementById('end-dialog').open,
  core: document.getElementById('end-core').textContent,
  error: document.getElementById('end-error').textContent,
  toast: (document.getElementById('toast') || {}).textContent,
  recorded: window.tellerApp.wrap && window.tellerApp.wrap.recorded,
})"""


@pytest.fixture
def desk_settings(core_server: CoreBankServer) -> dict[str, Any]:
    """The desk posts the confirmed business to the core simulator. The lease is long: the
    agent, its models and the cloud share this test's event loop on a loaded machine, and a
    missed 3 s renewal would restart the desk under the teller's feet."""
    return {"core_url": core_server.url,
            "core_secret_file": core_server.state_dir / "core.secret",
            "lease_ttl_s": 30.0}  # fmt: skip


@pytest.fixture
def oversight_fields(bank: Bank, gateway: IdentityGateway) -> dict[str, Any]:  # noqa: F811
    """The cloud's card and PIN steps go to this bank's HSM keys and the core; its online
    identity check to the gateway simulator."""
    identity = IdentityClient(gateway.url, KEY, "cloud", try_timeout_s=5.0, total_timeout_s=15.0)
    return {"cards": bank.checks, "identity": identity}


@pytest.fixture(scope="module")
def acted_frames(models: ModelSet, astronaut: np.ndarray) -> dict[str, list[np.ndarray]]:  # noqa: F811
    """What a cooperative customer shows the camera for each challenge (made before the
    cloud starts: the models' work would hold up its event loop)."""
    return acted(models, astronaut)


class Customer:
    """The customer in front of the terminal: reads the customer screen in Chromium and
    acts out what it says in front of the camera. ``frames()`` is the terminal camera as
    the agent's face match and liveness check read it (nothing until the customer sat
    down)."""

    def __init__(self, screen: Page, acted_frames: dict[str, list[np.ndarray]]) -> None:
        self.screen = screen
        self.acted = acted_frames
        self.action = "neutral"
        self.seated = asyncio.Event()
        #: every sentence the screen showed the customer, in order
        self.read: list[str] = []

    async def watch(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # the page between two renders
                text = str(await self.screen.locator("#message").text_content())
                if not self.read or self.read[-1] != text:
                    self.read.append(text)
                self.action = ACTION_OF.get(text, "neutral")
            await asyncio.sleep(0.1)

    async def frames(self) -> AsyncIterator[Frame]:
        await self.seated.wait()
        index = 0
        while True:
            for pixels in self.acted[self.action]:
                index += 1
                yield Frame(index, datetime.now(UTC), pixels)
                await asyncio.sleep(0.1)


def _press(pad: PtyServer, keys: str) -> None:
    """The customer types ``keys`` on the PIN pad now (an entry is waiting for them)."""
    sim = pad.responder
    assert isinstance(sim, PinPadSimulator)
    with pad.lock:
        sim.press(keys, time.monotonic())


async def _entering(pad: PtyServer) -> bool:
    sim = pad.responder
    assert isinstance(sim, PinPadSimulator)
    with pad.lock:
        return sim.entering


@contextlib.contextmanager
def _id_reader(tmp_path: Path) -> Iterator[tuple[IdCardSimulator, PtyServer]]:
    """The serial ID reader simulator, empty: the customer puts the card down when asked."""
    sim = IdCardSimulator([CARD])
    sim.remove()
    with PtyServer(sim, tmp_path / "idcard.tty") as server:
        yield sim, server


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.timeout(300)  # 1-2 min; more when the shared machine is heavily loaded
async def test_password_reset_from_both_screens_to_a_verified_package(
    acted_frames: dict[str, list[np.ndarray]],
    desked: Desked,
    tmp_path: Path,
    bank: Bank,
    pinpad_pty: PtyServer,
    card_slot: VirtualCardSlot,
) -> None:
    now = datetime.now(UTC)
    await service.create_account(SUP, PASSWORD, ["supervisor"], now, hasher=FAST_HASHER)
    await profiles.set_profile(TELLER, {"password_reset": 5}, ["cmn"], now)
    customer_types(pinpad_pty, "")  # nothing typed until the screen asks
    errors: list[str] = []
    asked: list[dict[str, Any]] = []

    async with contextlib.AsyncExitStack() as stack:
        idsim, id_pty = stack.enter_context(_id_reader(tmp_path))
        devices = tmp_path / "peripherals.json"
        devices.write_text(json.dumps({
            "id_reader": {"kind": "idcard", "port": str(id_pty.link),
                          "photo_decoder": "simulator"},
            "pin_pad": {"kind": "pinpad", "port": str(pinpad_pty.link), "baudrate": 9600},
            "card_reader": {"kind": "iccard", "reader": READER_NAME},
            "camera": {"kind": "camera", "device": "synthetic"},
        }))  # fmt: skip
        settings = agent_settings(
            tmp_path / "agents", desked.broker_port, TID, face_aware=False,
            screen_port=procs.free_port(), peripherals_file=devices,
        )  # fmt: skip
        agent = Agent(settings)
        pw = await stack.enter_async_context(async_playwright())
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        stack.push_async_callback(browser.close)
        kiosk = await browser.new_page(viewport={"width": 1280, "height": 900})
        kiosk.on("pageerror", lambda e: errors.append(f"screen: {e}"))
        customer = Customer(kiosk, acted_frames)
        # The terminal camera is the customer (no camera device here); every device step
        # is the agent's own handler over its configured adapters, signed with its key.
        agent.liveness.frames = camera_frames(customer)
        own = enrol(desked.authority, TID, now)
        agent.teller.steps = StepRunner(
            lambda: (own.key, own.certificate_pem),
            agent.step_handlers(customer),
            lambda: datetime.now(UTC),
        )
        run = asyncio.create_task(agent.run())

        async def stop_agent() -> None:
            agent.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(run, 15)

        stack.push_async_callback(stop_agent)
        watching = asyncio.create_task(customer.watch())
        stack.callback(watching.cancel)
        teller = await available(browser, desked.url, errors)
        await asyncio.wait_for(agent.connected.wait(), 30)
        screen = await eventually(lambda: _served(agent), 30)
        await kiosk.goto(f"http://127.0.0.1:{screen.port}/")
        message = kiosk.locator("#message")

        # The screen's own "我已满 60 岁" is rewritten to false: the desk must take the age
        # from the card read before queueing.
        async def not_elderly(route: Route) -> None:
            body = json.loads(route.request.post_data or "{}")
            asked.append(body)
            await route.continue_(post_data=json.dumps({**body, "elderly": False}))

        await kiosk.route("**/ask", not_elderly)
        # The screen's two MJPEG views are not what this walk is about; they would cost the
        # agent (this test's event loop) a decode and two JPEG encodes per frame, and a
        # starved loop starves the customer's audio in the recording.
        await kiosk.route("**/video/**", lambda route: route.abort())

        # 先刷身份证: the screen asks for the card; the customer puts it down then.
        await kiosk.get_by_role("button", name="视频柜员").click()
        await kiosk.get_by_role("button", name="先刷身份证").click()
        await expect(message).to_have_text(STEP_TEXT["id_card_read"], timeout=20_000)
        with id_pty.lock:
            idsim.insert(CARD)
        await expect(kiosk.locator("#id-read-name")).to_have_text("王*娜", timeout=20_000)
        await expect(kiosk.locator("#elderly")).to_have_attribute("aria-pressed", "true")
        await kiosk.locator("#menu button[data-code=password_reset]").click()
        await eventually(lambda: _true(asked), 20)
        assert asked[0]["business"] == "password_reset"

        # The teller's offer is elderly: from the signed card, not from the button.
        await expect(teller.locator("#offer-facts")).to_contain_text("老年客户", timeout=20_000)
        await teller.keyboard.press("Enter")
        await teller.wait_for_function(
            "document.getElementById('remote').videoWidth > 0", timeout=30_000
        )
        sid = str(await teller.evaluate("window.tellerApp.call.session"))
        await expect(teller.locator("#customer-name")).to_have_text("王*娜", timeout=15_000)
        await expect(teller.locator("#customer-body")).to_contain_text("个人密码重置")

        steps = teller.locator("#steps li")
        await expect(steps).to_have_count(10, timeout=15_000)

        def step(name: str) -> Any:
            return teller.locator(f"#steps li[data-step={name}]")

        async def ask(name: str) -> None:
            await expect(step(name)).to_have_class("next", timeout=15_000)
            await step(name).locator("button.step-ask").click()

        async def passed(name: str, within: float = 30_000) -> None:
            await expect(step(name)).to_have_class("done", timeout=within)

        await step("dual_recording").locator("button.step-do").click()
        await passed("dual_recording")

        # The ID step takes the read made before queueing (signed for that request).
        await expect(step("id_card_read").locator("button.step-ask")).to_have_text(
            "采用排队前所刷身份证", timeout=15_000
        )
        await ask("id_card_read")
        await passed("id_card_read")
        await ask("id_online_check")  # the cloud's own call to the gateway simulator
        await passed("id_online_check")

        # Face match: the screen asks the customer to look at the camera; they sit down.
        await ask("face_match")
        await expect(message).to_have_text(STEP_TEXT["face_match"], timeout=20_000)
        customer.seated.set()
        await passed("face_match", 90_000)  # the first match loads dlib's models

        # Liveness, twice: the customer acts out each challenge only as the screen says it.
        for name in ("liveness", "active_liveness"):
            shown = len(customer.read)
            await ask(name)
            await passed(name, 60_000)
            challenges = [t for t in customer.read[shown:] if t in ACTION_OF]
            assert challenges, customer.read[shown:]

        # The bank card: inserted once the screen asks for it.
        await ask("card_read")
        await expect(message).to_have_text(STEP_TEXT["card_read"], timeout=20_000)
        await asyncio.to_thread(card_slot.insert, bank.card)
        await passed("card_read", 60_000)

        # The new PIN, twice, each typed once the screen says so.
        await ask("pin_entry")
        for words in (NEW_TEXT, AGAIN_TEXT):
            await expect(message).to_have_text(words, timeout=20_000)
            await eventually(lambda: _entering(pinpad_pty), 20)
            _press(pinpad_pty, NEW_PIN + "#")
        await passed("pin_entry", 60_000)

        # The customer signs on the screen's pad; the terminal signs that it was delivered.
        await teller.click("#ask-sign")
        pad = kiosk.locator("#pad")
        await expect(pad).to_be_visible(timeout=20_000)
        box = await pad.bounding_box()
        assert box is not None
        await kiosk.mouse.move(box["x"] + 40, box["y"] + 100)
        await kiosk.mouse.down()
        for i in range(1, 12):
            await kiosk.mouse.move(box["x"] + 40 + i * 30, box["y"] + 100 + (i % 3) * 20)
        await kiosk.mouse.up()
        await kiosk.click("#signed")
        await expect(teller.locator("#signature-box")).to_be_visible(timeout=20_000)
        await ask("e_signature")
        await passed("e_signature")

        # A second person authorises, from the supervisor's page.
        sup = await (await browser.new_context()).new_page()
        sup.on("pageerror", lambda e: errors.append(f"watch: {e}"))
        await sup.goto(f"{desked.url}/teller/watch")
        await sup.fill("#username", SUP)
        await sup.fill("#password", PASSWORD)
        await sup.press("#password", "Enter")
        await sup.locator(f"#live tr[data-session='{sid}'] button.show-steps").click()
        authorisation = sup.locator("#sup-steps li[data-step=supervisor_authorisation]")
        await expect(authorisation).to_have_class("next", timeout=15_000)
        await authorisation.locator("button.authorise").click()
        await expect(authorisation).to_have_class("done", timeout=15_000)
        await passed("supervisor_authorisation")

        # The card's photo, decoded by the configured reader, came over the call's data
        # channel meanwhile (asked again until the terminal hears it).
        await expect(teller.locator("#id-photo")).to_be_visible(timeout=45_000)

        # 办结: the core applies the reset; the page shows 成功 with its reference.
        await teller.click("#hangup")
        await expect(teller.locator("#end-dialog")).to_be_visible()
        await teller.check("input[name=outcome][value=done]")
        await teller.fill("#notes", "密码重置")
        await teller.click("#end-confirm")
        wrap = teller.locator("#wrap-core")
        try:
            await expect(wrap).to_contain_text("成功", timeout=60_000)
        except AssertionError:
            raise AssertionError(
                f"no 成功 in the wrap-up: {await teller.evaluate(ENDING)}"
            ) from None
        shown_core = str(await wrap.text_content())
        reference = shown_core[shown_core.index("CB") :]
        assert reference.startswith("CB") and len(reference) == 18, shown_core

        # What the desk holds: every device step passed on the terminal's signed result.
        loaded = await workflow.get(desked.ov, sid)
        assert loaded.workflow.outcome == "completed"
        records = {r.step: r for r in loaded.workflow.records}
        device_steps = ("id_card_read", "face_match", "liveness", "active_liveness",
                        "card_read", "pin_entry", "e_signature")  # fmt: skip
        for name in device_steps:
            assert records[name].passed and records[name].actor == f"terminal:{TID}", name
            assert "override" not in records[name].detail, name
        assert records["supervisor_authorisation"].actor == SUP
        assert records["card_read"].detail["arqc_verified"] is True
        results = [e.data for e in loaded.timeline.events if e.kind == "step_result"]
        first = results[0]
        assert first["step"] == "id_card_read" and first.get("before_queue") is True, first
        born = CARD.text.birth_date  # 王美娜, 1958
        age = now.year - born.year - ((now.month, now.day) < (born.month, born.day))
        assert first["masked"]["elderly"] is True and first["masked"]["age"] == age, first
        posted = next(e.data for e in loaded.timeline.events if e.kind == "core_posted")
        assert posted["reference"] == reference
        assert asked[0]["elderly"] is True  # the screen pressed it; it was sent as false

        # The sealed package verifies with the CLI a user runs, recording included.
        pkg = desked.ov.evidence_dir / package.safe_name(sid)
        row = await eventually(
            lambda: TellerSession.get_or_none(id=sid, recording_sha256__isnull=False), 90
        )
        await eventually(lambda: _true((pkg / "package.json").exists()), 60)
        keys = desked.ov.evidence_keys
        (tmp_path / "seal.pem").write_text(public_pem(keys.seal.public_key()))
        (tmp_path / "tsa.pem").write_text(public_pem(keys.tsa.public_key()))
        (tmp_path / "ca.pem").write_text(certificate_pem(desked.authority.issuing))
        argv = [sys.executable, "-m", "cuntong", "evidence", "verify", str(pkg), "--json",
                "--trust", str(tmp_path / "seal.pem"), "--trust", str(tmp_path / "tsa.pem"),
                "--device-ca", str(tmp_path / "ca.pem"),
                "--recording", str(row.recording_path)]  # fmt: skip

        async def intact() -> dict[str, Any] | None:
            done = await asyncio.to_thread(_cli, argv)
            report: dict[str, Any] = json.loads(done.stdout) if done.stdout else {}
            # the recording may be archived after the seal (named in recording.json)
            return report if done.returncode == 0 and report.get("recording") else None

        report = await eventually(intact, 60)
        assert report["ok"] is True and report["problems"] == [], report
        signed = {s["step"] for s in report["signed_steps"]}
        assert signed >= set(device_steps), signed
        assert report["overrides"] == []
        assert report["recording"]["sha256"] == row.recording_sha256, report
        assert errors == []


async def _served(agent: Agent) -> Any:
    return agent.screen if agent.screen is not None and agent.screen.port else None


async def _true(value: object) -> object:
    return value
