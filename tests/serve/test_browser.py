"""The page in a real headless Chromium against a real uvicorn server: draw, pick and drop files.

Needs Debian's ``chromium`` (/usr/bin/chromium) and the ``playwright`` Python package (no
``playwright install``: the system browser is used). Skips locally when either is missing;
fails under CI (``CI`` set), where ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # a browser start takes seconds, tens on a busy machine

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _require_browser():
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append("the playwright Python package (pip install playwright)")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return sync_playwright


@pytest.fixture(scope="module")
def server(tiny_run):
    """A real uvicorn server on a free loopback port, in a thread; yields its URL."""
    pytest.importorskip("uvicorn")
    import uvicorn

    from notsure.deploy.engine import Engine, run_info
    from notsure.deploy.predictor import SelectivePredictor
    from notsure.serve.app import create_app

    engine = Engine.load(tiny_run)
    reference = SelectivePredictor.load(tiny_run)  # torch: what every answer must agree with
    app = create_app(engine, run_info(tiny_run, engine.predictor))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start within 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", reference
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser_page(server):
    sync_playwright = _require_browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 760})
        page.goto(server[0] + "/")
        page.wait_for_function("document.getElementById('headline').textContent"
                               ".includes('target FPR')")
        yield page
        browser.close()


def _answer(page) -> str:
    page.wait_for_function("!['', 'asking'].includes("
                           "document.getElementById('answer').dataset.label)", timeout=20_000)
    return page.get_attribute("#answer", "data-label")


def _expected_label(reference, pixels: list) -> str:
    """The in-process decision for the pixels the server says the model saw."""
    d = reference.predict(np.array([pixels], np.uint8))
    return reference.labels_of(d.prediction)[0]


def test_draw_a_stroke_and_get_an_answer(browser_page, server, tmp_path):
    page, (_, reference) = browser_page, server
    box = page.locator("#pad").bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15
    page.mouse.move(x0, y0)
    page.mouse.down()
    for t in np.linspace(0, 1, 20):  # a vertical stroke, top to bottom
        page.mouse.move(x0, y0 + t * box["height"] * 0.7)
    page.mouse.up()
    with page.expect_response("**/api/predict**") as response:
        page.click("#submit")
    prediction = response.value.json()["predictions"][0]
    label = _answer(page)
    assert label == prediction["label"]
    assert label in (*reference.class_names, "not_sure")
    assert label == _expected_label(reference, prediction["input"])
    shown = page.text_content("#answer")
    assert shown == ("not sure" if label == "not_sure" else label)
    assert page.text_content("#why").startswith("not sure" if label == "not_sure" else "answered")
    # The model's input is drawn (bright ink somewhere) and the chart has one bar per class.
    ink = page.evaluate("(() => { const c = document.getElementById('seen');"
                        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                        "let m = 0; for (let i = 0; i < d.length; i += 4) m = Math.max(m, d[i]);"
                        "return m; })()")
    assert ink > 128
    assert page.locator("#chart rect").count() == len(reference.class_names)
    page.screenshot(path=str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_pick_a_file_and_drop_a_file(browser_page, server, tiny_images, tmp_path):
    page, (_, reference) = browser_page, server
    x, _ = tiny_images
    want = reference.labels_of(reference.predict(x[:2]).prediction)

    path = tmp_path / "digit.png"
    path.write_bytes(_png(x[0]))
    page.click("#clear")
    page.set_input_files("#file", str(path))
    assert _answer(page) == want[0]

    page.click("#clear")
    data = base64.b64encode(_png(x[1])).decode()
    transfer = page.evaluate_handle(
        "(b64) => { const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));"
        "const dt = new DataTransfer();"
        "dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' })); return dt; }",
        data)
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    assert _answer(page) == want[1]


def test_page_loads_nothing_from_outside(browser_page, server):
    page, (url, _) = browser_page, server
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.reload()
    page.wait_for_function("document.getElementById('headline').textContent"
                           ".includes('target FPR')")
    assert requested and all(u.startswith(url) for u in requested), requested
