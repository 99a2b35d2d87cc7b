"""The ``face_match`` device step with the real models: the ID photo read in the session
(serial simulator) against a live frame, signed and verified as the cloud does."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from skimage import data

from cloud.workflow.device import check_result
from common.wire.call import StepRequest
from edge.steps.facematch import FaceMatchStep, distance_for
from edge.vision.facematch import FaceMatcher
from edge.vision.runtime import ModelSet
from firmware_adapters.idcard.adapter import IdCardReader
from firmware_adapters.idcard.photo import SimulatorPhotoDecoder
from firmware_adapters.idcard.simulator import IdCardSimulator, sample_card
from firmware_adapters.pty_server import PtyServer
from provisioning import ca as ca_lib
from tests.helpers import eventually
from tests.integration.agents import make_agent, new_id
from tests.steps_rig import enrol, id_reader
from tests.vision.face_match_models import signed_copy

NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def matcher(models: ModelSet, tmp_path_factory: pytest.TempPathFactory) -> FaceMatcher:
    path, trusted = signed_copy(tmp_path_factory.mktemp("fm"), Ed25519PrivateKey.generate())
    return FaceMatcher.load(models.detector, path, trusted)


def test_the_catalogue_similarity_maps_onto_dlibs_distance() -> None:
    assert distance_for(50) == pytest.approx(0.6)  # dlib's own operating point
    assert distance_for(55) == pytest.approx(0.54)
    with pytest.raises(ValueError):
        distance_for(100)


async def test_face_match_step_against_the_photo_read_in_this_session(
    matcher: FaceMatcher, astronaut: np.ndarray, tmp_path: Path
) -> None:
    async def loaded() -> FaceMatcher:
        return matcher

    live = [np.ascontiguousarray(astronaut[20:320, 80:380])]

    async def frame() -> np.ndarray:
        return live[0]

    ask_read = StepRequest("s1", "id_card_read", "aa" * 16)
    ask = StepRequest("s1", "face_match", "bb" * 16, {"threshold": 55})
    async with id_reader(tmp_path, sample_card(0)) as reader:
        step = FaceMatchStep(loaded, reader.photos.get, frame)
        early = await step(ask)
        assert early.outcome == "failed" and "read the ID card first" in early.reason
        await reader(ask_read)
    done = await step(ask)
    assert done.outcome == "passed", done
    assert done.masked["score"] >= 55 and done.masked["threshold"] == 55
    assert set(done.masked) == {"score", "threshold", "distance", "matched", "models"}
    # Signed by the terminal and verified by the cloud's checker.
    authority = ca_lib.load_or_create(tmp_path / "ca", NOW)
    terminal = enrol(authority, "SX-00001", NOW)
    verified = check_result(
        terminal.sign(ask, done, NOW), session_id="s1", terminal_id="SX-00001",
        issued={ask.nonce: "face_match"}, answered=(), issuers=[authority.issuing], now=NOW,
    )  # fmt: skip
    assert verified.masked["score"] == done.masked["score"]
    # Someone else in front of the camera does not match; an empty frame has no face.
    live[0] = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2RGB)
    other = await step(ask)
    assert other.outcome == "failed" and other.reason == "the live face does not match the ID photo"
    live[0] = np.zeros((240, 320, 3), np.uint8)
    empty = await step(ask)
    assert empty.outcome == "failed" and "faces found" in empty.reason


class Counting(FaceMatcher):
    """The real matcher, counting how often it embeds an ID photo."""

    id_embeddings = 0

    def id_embedding(self, id_photo: np.ndarray) -> np.ndarray:
        self.id_embeddings += 1
        return super().id_embedding(id_photo)


async def test_the_id_photo_is_embedded_once_when_the_read_passes_and_reused(
    matcher: FaceMatcher, astronaut: np.ndarray, tmp_path: Path
) -> None:
    counting = Counting(matcher.detector, matcher.embedder)

    async def loaded() -> FaceMatcher:
        return counting

    async def frame() -> np.ndarray:
        return np.ascontiguousarray(astronaut[20:320, 80:380])

    async with id_reader(tmp_path, sample_card(0)) as reader:
        step = FaceMatchStep(loaded, reader.photos.get, frame)
        reader.on_photo = step.id_faces.prepare  # as the agent wires it
        read = await reader(StepRequest("s1", "id_card_read", "aa" * 16))
    assert read.outcome == "passed"

    async def embedded() -> bool:
        return counting.id_embeddings == 1

    await eventually(embedded)  # in the background, before any match is asked for
    for i in range(3):
        done = await step(StepRequest("s1", "face_match", f"{i:032x}", {"threshold": 55}))
        assert done.outcome == "passed", done
    assert counting.id_embeddings == 1 and len(step.id_faces) == 1
    # The embedding never reaches the step's result, and is gone once cleared.
    assert set(done.full) == {"score", "threshold", "distance", "matched", "models"}
    step.id_faces.clear()
    assert len(step.id_faces) == 0
    again = await step(StepRequest("s1", "face_match", "cc" * 16, {"threshold": 55}))
    assert again.outcome == "passed" and counting.id_embeddings == 2  # computed anew


async def test_the_agent_drops_the_id_face_when_the_call_is_over(tmp_path: Path) -> None:
    """The agent built from a peripherals file (serial ID reader on the simulator, camera)
    embeds the ID photo's face when its own read passes and drops it with the photo at the
    call's end, also while the embedding is still being computed."""
    config = tmp_path / "peripherals.json"
    config.write_text(json.dumps({
        "id_reader": {"kind": "idcard", "port": str(tmp_path / "idcard.tty")},
        "camera": {"kind": "camera", "device": "synthetic"},
    }))  # fmt: skip
    with PtyServer(IdCardSimulator([sample_card(0)]), tmp_path / "idcard.tty"):
        agent = make_agent(tmp_path / "agents", 1883, new_id("FM"), peripherals_file=config)
        reader = agent.peripherals.adapters["id_reader"]
        assert isinstance(reader, IdCardReader)
        reader.wlt_decoder = SimulatorPhotoDecoder()  # the simulator's photo format
        handlers = agent.step_handlers(agent.camera)
        face = handlers["face_match"]
        assert isinstance(face, FaceMatchStep) and agent.id_step is not None
        for settle in (False, True):
            read = await handlers["id_card_read"](StepRequest("s1", "id_card_read", "aa" * 16))
            assert read.outcome == "passed" and len(face.id_faces) == 1
            photo = agent.id_step.photos["s1"]
            if settle:  # the embedding done, as when the teller asks for the match
                assert (await face.id_faces.embedding(photo)).shape == (128,)
            agent.teller.call_over()
            assert len(face.id_faces) == 0 and agent.id_step.photos == {}
            after = await face(StepRequest("s1", "face_match", "bb" * 16))
            assert after.outcome == "failed" and "read the ID card first" in after.reason
