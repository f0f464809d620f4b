"""The explorer in a real headless browser: Chromium (Debian's package, installed by .ci/run) driven by Playwright.

The test loads the page, hovers a point (its input and reconstruction appear), clicks it (its code fills the
sliders), moves a slider with the keyboard and checks that the decoded image changes (the page keeps each image's
SHA-256 on the <img>), then runs a traversal and saves a screenshot. With VAEKIT_SCREENSHOT=path it also copies
the screenshot there, to look at (the one in docs/figures/serve.png shows an MNIST run, made the same way).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import vaekit

from conftest import tiny_config

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip)")
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")

DIGEST = "document.getElementById('{}').dataset.digest"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    run = tmp_path_factory.mktemp("browser") / "digits"
    config = tiny_config(epochs=20)
    config.model.latent_dim = 6
    vaekit.fit(config, run)
    process = subprocess.Popen([sys.executable, "-m", "vaekit", "serve", str(run)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not match:
        process.kill()
        pytest.fail(line + process.stderr.read())
    yield match.group(0)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=20)


def _point_position(page, trace: int = 0, index: int = 0) -> tuple[float, float]:
    """Page pixels of a point of the scatter plot, from Plotly's own axis mappings."""
    return tuple(page.evaluate("""([trace, index]) => {
        const gd = document.getElementById('scatter'), size = gd._fullLayout._size, t = gd._fullData[trace];
        const box = gd.getBoundingClientRect();
        return [box.left + size.l + gd._fullLayout.xaxis.l2p(t.x[index]),
                box.top + size.t + gd._fullLayout.yaxis.l2p(t.y[index])]; }""", [trace, index]))


def test_hover_click_and_slider_decode_in_a_real_browser(server, tmp_path):
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server)
            page.wait_for_selector("#scatter[data-ready]", timeout=30_000)
            assert page.locator("#scatter .point").count() > 100  # the test split's points are drawn
            page.wait_for_function(f"{DIGEST.format('decoded')} !== undefined")  # the origin, decoded at start

            x, y = _point_position(page, trace=2, index=3)
            page.mouse.move(x, y)
            page.wait_for_function(f"{DIGEST.format('reconstruction')} !== undefined && "
                                   f"{DIGEST.format('input')} !== undefined", timeout=15_000)
            page.mouse.click(x, y)
            page.wait_for_function("document.getElementById('point-a').textContent.startsWith('#')")
            clicked = page.evaluate("window.vaekit.clicked.z")
            assert len(clicked) == 6
            page.wait_for_function(f"!window.vaekit.decodeBusy && {DIGEST.format('decoded')} !== undefined")
            before = page.get_attribute("#decoded", "data-digest")

            first = page.evaluate("window.vaekit.info.dims[0].dim")  # the most informative dimension
            page.focus(f"#slider-{first}")
            for _ in range(40):  # 40 steps of 0.05: two units along that dimension
                page.keyboard.press("ArrowRight" if clicked[first] < 1.5 else "ArrowLeft")
            page.wait_for_function(f"{DIGEST.format('decoded')} !== '{before}'", timeout=15_000)
            assert abs(page.evaluate(f"window.vaekit.z[{first}]") - clicked[first]) > 1.0

            page.click("#traverse")
            page.wait_for_function(f"{DIGEST.format('traversal')} !== undefined", timeout=15_000)
            shot = tmp_path / "explorer.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
            if os.environ.get("VAEKIT_SCREENSHOT"):
                shutil.copy(shot, Path(os.environ["VAEKIT_SCREENSHOT"]))
        finally:
            browser.close()
    assert not errors, errors
