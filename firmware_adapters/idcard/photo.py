"""The seam for the ID-card photo decoder (WLT -> JPEG/PNG).

A real SAM_V reader hands over the photo as 1024 bytes of vendor-compressed `.wlt`; only the
reader vendor's library (`libwlt2bmp.so` / `WltRS.dll` and its licence file) turns it into an
image. That library is not redistributable, so the adapter takes the decoder as an injected
object with one method:

    class WltDecoder(Protocol):
        def decode(self, wlt: bytes) -> bytes: ...   # JPEG or PNG bytes

A terminal image wraps the vendor library in a class with that method; the simulator puts an
already decoded JPEG where the WLT goes, so `SimulatorPhotoDecoder` only checks the image
magic and passes it through. A decoder that fails raises `PhotoUndecodable`.
"""

from __future__ import annotations

from typing import Protocol

from firmware_adapters.errors import PeripheralError

#: image magic -> kind; only these two leave a decoder
MAGIC: dict[bytes, str] = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png"}


class PhotoUndecodable(PeripheralError):
    """The card photo could not be turned into an image (vendor decoder fault, not an image)."""


class WltDecoder(Protocol):
    """Turns the reader's WLT photo into JPEG or PNG bytes (the vendor library's job)."""

    def decode(self, wlt: bytes) -> bytes: ...


def image_kind(data: bytes) -> str | None:
    """'jpeg' or 'png' from the magic bytes, None for anything else."""
    for magic, kind in MAGIC.items():
        if data.startswith(magic):
            return kind
    return None


class SimulatorPhotoDecoder:
    """For the simulated reader, which sends a decoded JPEG in the WLT slot."""

    def decode(self, wlt: bytes) -> bytes:
        if image_kind(wlt) is None:
            raise PhotoUndecodable(
                f"{len(wlt)} photo bytes are not JPEG/PNG: a real reader's WLT needs the "
                "vendor decoder (docs/peripherals.md)"
            )
        return wlt


def decode_photo(decoder: WltDecoder, wlt: bytes) -> bytes:
    """Run `decoder` and check it gave an image; every failure is PhotoUndecodable."""
    try:
        image = decoder.decode(wlt)
    except PhotoUndecodable:
        raise
    except Exception as err:  # a vendor library may raise anything: one error at the seam
        raise PhotoUndecodable(f"WLT decoder failed: {type(err).__name__}: {err}") from err
    if image_kind(image) is None:
        raise PhotoUndecodable("WLT decoder returned neither JPEG nor PNG")
    return image
