"""The HTML report renders for a person: a headless Chromium screenshot shows text, tables and figures.

Skips (with the reason) where Chromium is not installed: ``apt-get install -y chromium``.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)")
def test_report_screenshot_shows_content(rendered, tmp_path):
    html = rendered[1]["html"]
    png = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1280,4000",
           html.resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert png.is_file(), "Chromium wrote no screenshot"
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert img.shape == (4000, 1280, 3)
    ink = (img.sum(axis=2) < 600).mean()  # anything darker than near-white: text, table rules, plots
    assert ink > 0.03, f"the page looks blank ({ink:.1%} non-white pixels)"
    # the squeeze role colour (#d62728) of the embedded figures is on screen: images decoded and drawn
    red = (abs(img[..., 0] - 0xD6) < 12) & (abs(img[..., 1] - 0x27) < 12) & (abs(img[..., 2] - 0x28) < 12)
    assert red.sum() > 200, "no figure pixels in the squeeze colour: embedded PNGs did not render"
