"""Shared by the browser tests of the cloud's pages: Debian's Chromium and a screenshot check."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from playwright.async_api import Page

CHROMIUM = "/usr/bin/chromium"


async def shot(page: Page, path: Path) -> None:
    """Screenshot and check it shows a page, not a blank canvas."""
    png = await page.screenshot(path=str(path), full_page=True)
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 600
    assert float(img.std()) > 20, f"{path.name} looks empty"
    # The brand red of the top bar and some dark text must both be there.
    assert (img[:56, :, 2] > 140).mean() > 0.5 and (img < 80).all(axis=2).mean() > 0.001
