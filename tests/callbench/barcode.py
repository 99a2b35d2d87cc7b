"""A number drawn into a video frame as black and white blocks, and read back after decoding.

Glass-to-glass latency needs the moment a frame was "captured" to survive the encoder, the
network, Janus, the jitter buffer and the decoder: it travels in the picture itself. Two
rows of ``BITS`` blocks across the top of the luma plane: the first row holds the bits,
the second their complement, so a frame the codec smeared (or any other picture) reads as
``None`` rather than as a wrong number. Blocks are 16×16 pixels, VP8's macroblock size,
and only their centres are read, so block edges blurred by the codec do not matter.

Pure: numpy arrays in, numbers out.
"""

from __future__ import annotations

import numpy as np

BITS = 32
BLOCK = 16
WHITE, BLACK = 235, 16  # video-range luma
MARGIN = 40  # a read bit must be this far from mid-grey


def width_needed() -> int:
    return BITS * BLOCK


def draw(luma: np.ndarray, value: int) -> None:
    """Draw ``value`` (0 ≤ value < 2**BITS) into the top rows of a luma plane, in place."""
    if not 0 <= value < 1 << BITS:
        raise ValueError(f"value {value} does not fit in {BITS} bits")
    if luma.shape[0] < 2 * BLOCK or luma.shape[1] < width_needed():
        raise ValueError(f"frame {luma.shape} too small for the barcode")
    for i in range(BITS):
        bit = (value >> (BITS - 1 - i)) & 1
        cols = slice(i * BLOCK, (i + 1) * BLOCK)
        luma[0:BLOCK, cols] = WHITE if bit else BLACK
        luma[BLOCK : 2 * BLOCK, cols] = BLACK if bit else WHITE


def read(luma: np.ndarray) -> int | None:
    """The number drawn by ``draw``, or None when the two rows do not agree."""
    if luma.shape[0] < 2 * BLOCK or luma.shape[1] < width_needed():
        return None
    q = BLOCK // 4
    rows = luma[: 2 * BLOCK, : width_needed()].astype(np.int32)
    # centre of every block: (2, BITS) means
    centres = rows.reshape(2, BLOCK, BITS, BLOCK)[:, q:-q, :, q:-q].mean(axis=(1, 3))
    top, bottom = centres[0] - 128, centres[1] - 128
    if np.any(np.abs(top) < MARGIN) or np.any(np.abs(bottom) < MARGIN):
        return None
    bits = top > 0
    if np.any(bits == (bottom > 0)):
        return None
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def stamp_ms(now: float) -> int:
    """Wall-clock milliseconds, wrapped into the barcode's range (``now`` in epoch seconds)."""
    return int(now * 1000) % (1 << BITS)


def age_ms(stamp: int, now: float) -> int:
    """How long ago ``stamp`` was taken, across the wrap (assumes less than 24 days)."""
    return (stamp_ms(now) - stamp) % (1 << BITS)
