"""Terminals that sign device-step results the way the agent does (``edge.steps``).

A throwaway CA (``provisioning.ca``) issues each terminal's certificate from a CSR made on
the "terminal" (``provisioning.device.new_csr``); results are made by the edge's own
``StepRunner`` / ``sign_result`` and ID reads by ``edge.steps.idcard`` over the real serial
simulator — never a hand-written result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric import ec

from common.wire.call import StepRequest, StepResult
from edge.steps.idcard import IdCardStep
from edge.steps.liveness import verdict_result
from edge.steps.sign import Done, sign_result
from edge.vision.challenge import Challenge
from edge.vision.pipeline import FrameAnalysis
from edge.vision.planarity import Planarity
from edge.vision.verdict import FrameDigest, Policy, decide
from firmware_adapters.idcard.adapter import IdCardReader
from firmware_adapters.idcard.photo import SimulatorPhotoDecoder
from firmware_adapters.idcard.simulator import IdCardSimulator, SimCard
from firmware_adapters.pty_server import PtyServer
from provisioning import ca as ca_lib
from provisioning.device import new_csr


@dataclass
class Terminal:
    terminal_id: str
    key: ec.EllipticCurvePrivateKey
    certificate_pem: str

    def sign(self, request: StepRequest, done: Done, now: dt.datetime) -> StepResult:
        return sign_result(self.key, self.certificate_pem, request, done, now)


def enrol(authority: ca_lib.CertificateAuthority, terminal_id: str, now: dt.datetime) -> Terminal:
    """A terminal's key and certificate as enrolment makes them (key on the terminal)."""
    key = ca_lib.new_key()
    issued = authority.issue_device(new_csr(key, terminal_id), terminal_id, now)
    return Terminal(terminal_id, key, ca_lib.cert_pem(issued.cert).decode())


def authority(directory: Path, now: dt.datetime) -> ca_lib.CertificateAuthority:
    return ca_lib.load_or_create(directory, now)


@contextlib.asynccontextmanager
async def id_reader(tmp_path: Path, card: SimCard) -> AsyncIterator[IdCardStep]:
    """The ``id_card_read`` handler on the serial ID-card simulator holding ``card``."""
    with PtyServer(IdCardSimulator([card]), tmp_path / "idcard.tty") as server:

        def reader() -> IdCardReader:
            return IdCardReader(
                "idcard", str(server.link), timeout=2.0, wlt_decoder=SimulatorPhotoDecoder()
            )

        yield IdCardStep(reader, lambda: dt.date(2026, 11, 25))


def agent_verdict(passive: float, business: str = "password_reset") -> Done:
    """A liveness step result around the verdict the agent's own producer makes
    (``edge.vision.verdict.decide`` over frame analyses and a passed challenge)."""
    challenge = dataclasses.replace(
        Challenge.start(0.0, random.Random(7)), outcome="passed", step=3
    )
    digest = FrameDigest()
    for i in range(4):
        digest.update(np.full((8, 8, 3), i, np.uint8))
    analyses = [FrameAnalysis(1, (), passive=passive) for _ in range(4)]
    # a real face's parallax on both sides of the turn (as tests/vision/test_session.py)
    deep = Planarity(measured=((1, 0.05), (1, 0.05), (-1, 0.05), (-1, 0.05)), peaks=(20.0, 20.0))
    models = {"passive": "minifasnet-v2"}
    verdict = decide(analyses, challenge, Policy(), business, models, digest, deep)
    return verdict_result(verdict)
