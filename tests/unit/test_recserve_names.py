"""The recordings server's pure core (``cloud.media.recserve``): which names are a room's
recordings and which peer certificates may read them. The server itself runs for real in
tests/teller/test_recordings_server.py."""

from __future__ import annotations

from pathlib import Path

from cloud.media.recserve import allowed_peer, room_file, room_files, valid_name, valid_room


def test_names_stay_inside_one_room() -> None:
    assert valid_room("sess-1") and valid_room("a_b")
    for room in ("", "..", ".x", "a/b", "a%2Fb", "x" * 129):
        assert not valid_room(room), room
    assert valid_name("s1", "s1-customer-audio-0.mjr")
    assert valid_name("s1", "s1-teller-2-video-11.mjr")
    for name in (
        "s10-customer-audio-0.mjr",  # another room that starts alike
        "s1-customer-audio-0.mjr.part",
        "s1-customer-audio-0.txt",
        "../s1-customer-audio-0.mjr",
        "s1-..-audio-0.mjr",
        "s1-customer-audio-x.mjr",
        "s1/customer-audio-0.mjr",
    ):
        assert not valid_name("s1", name), name


def test_only_regular_files_directly_in_the_folder(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "s1-customer-audio-0.mjr").write_bytes(b"abc")
    (rec / "s1-customer-video-1.mjr").mkdir()  # a folder is not a file
    (tmp_path / "s1-customer-audio-5.mjr").write_bytes(b"outside")
    (rec / "s1-customer-audio-5.mjr").symlink_to(tmp_path / "s1-customer-audio-5.mjr")
    assert [(f.name, f.size) for f in room_files(rec, "s1")] == [("s1-customer-audio-0.mjr", 3)]
    assert room_file(rec, "s1", "s1-customer-audio-0.mjr") == rec / "s1-customer-audio-0.mjr"
    for name in ("s1-customer-video-1.mjr", "s1-customer-audio-5.mjr", "s1-customer-audio-9.mjr"):
        assert room_file(rec, "s1", name) is None, name


def test_only_cloud_recordings_certificates_may_read() -> None:
    def cert(cn: str) -> dict[str, object]:
        return {"subject": ((("organizationName", "x"),), (("commonName", cn),))}

    assert allowed_peer(cert("svc.api-cloud-1-recordings")) == "svc.api-cloud-1-recordings"
    for cn in ("svc.api-cloud-1", "SX-00001", "SX-00001-recordings", "svc.x-recordings-desk"):
        assert allowed_peer(cert(cn)) is None, cn
    assert allowed_peer(None) is None and allowed_peer({}) is None
