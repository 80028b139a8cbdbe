"""The HTTP API against the in-process predictor: good requests, every bad-request kind, fuzzing."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
from fastapi.testclient import TestClient  # noqa: E402

from notsure.data.preprocess import to_mnist_form  # noqa: E402
from notsure.deploy.engine import Engine, run_info  # noqa: E402
from notsure.deploy.predictor import SelectivePredictor  # noqa: E402
from notsure.serve.app import Limits, create_app  # noqa: E402

MAX_BYTES, MAX_IMAGES = 300_000, 8


@pytest.fixture(scope="module")
def engine(tiny_run) -> Engine:
    return Engine.load(tiny_run)


@pytest.fixture(scope="module")
def reference(tiny_run) -> SelectivePredictor:
    """The run's own predictor on torch: what every answer must agree with."""
    return SelectivePredictor.load(tiny_run)


@pytest.fixture(scope="module")
def client(engine, tiny_run) -> TestClient:
    app = create_app(engine, run_info(tiny_run, engine.predictor),
                     Limits(max_bytes=MAX_BYTES, max_images=MAX_IMAGES))
    return TestClient(app)  # re-raises any server exception: a 500 fails the test


def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def drawing(seed: int = 0) -> np.ndarray:
    """A 200x160 white page with a thick dark vertical stroke, as the page's canvas sends."""
    page = np.full((200, 160), 255, np.uint8)
    col = 60 + seed * 7
    page[30:170, col:col + 18] = 20
    return page


def expected(reference: SelectivePredictor, x: np.ndarray) -> list[dict]:
    d = reference.predict(x)
    labels = reference.labels_of(d.prediction)
    out = []
    for i in range(len(x)):
        c = int(d.candidate[i])
        out.append({"label": labels[i], "candidate": reference.class_names[c],
                    "margin": d.margins[i, c], "threshold": reference.strategy.thresholds[c],
                    "scores": d.margins[i]})
    return out


def check_answers(got: list[dict], want: list[dict], class_names) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g["label"] == w["label"]
        assert g["candidate"] == w["candidate"]
        assert g["reason"] == ("below_threshold" if w["label"] == "not_sure" else "answered")
        assert g["margin"] == pytest.approx(w["margin"], abs=1e-3)
        assert g["threshold"] == pytest.approx(w["threshold"], abs=1e-12)
        assert [g["scores"][n] for n in class_names] == pytest.approx(list(w["scores"]), abs=1e-3)


def test_health_and_model(client, tiny_run, reference):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["run_id"].startswith("tiny-")
    doc = client.get("/api/model").json()
    assert doc["class_names"] == list(reference.class_names)
    assert doc["thresholds"] == pytest.approx(reference.strategy.thresholds.tolist())
    assert doc["target_fpr"] == 0.05 and doc["delta"] == 0.2
    certificates = json.loads((tiny_run / "thresholds.json").read_text())["certificates"]
    assert doc["certificates"] == certificates
    assert doc["run_id"] == health["run_id"]


def test_json_images_answer_like_the_predictor(client, reference, tiny_images):
    x, y = tiny_images
    r = client.post("/api/predict", json={"images": x[:8].tolist()})
    assert r.status_code == 200
    body = r.json()
    check_answers(body["predictions"], expected(reference, x[:8]), reference.class_names)
    # The tiny run must really answer some of these, or the comparison above proves little.
    assert any(p["label"] != "not_sure" for p in body["predictions"])


def test_png_dataset_images_are_used_as_they_are(client, reference, tiny_images):
    x, _ = tiny_images
    files = [("images", (f"{i}.png", png(x[i]), "image/png")) for i in range(8, 12)]
    r = client.post("/api/predict?include_input=true", files=files)
    assert r.status_code == 200
    got = r.json()["predictions"]
    assert [p["name"] for p in got] == [f"{i}.png" for i in range(8, 12)]
    assert np.array_equal(np.array([p["input"] for p in got]), x[8:12])
    check_answers(got, expected(reference, x[8:12]), reference.class_names)


@pytest.mark.parametrize("encode", ["png_gray", "png_rgba", "jpeg_rgb"])
def test_drawings_and_photos_are_mnist_preprocessed(client, reference, encode):
    page = drawing()
    if encode == "png_gray":
        data, sent = png(page), page
    elif encode == "png_rgba":  # canvas with transparent background and black strokes
        rgba = np.zeros((*page.shape, 4), np.uint8)
        rgba[..., 3] = 255 - page
        data, sent = png(rgba, "RGBA"), rgba
    else:
        sent = np.repeat(page[..., None], 3, axis=2)
        data = jpeg(sent)
        sent = np.asarray(Image.open(io.BytesIO(data)).convert("L"))  # what JPEG decodes to
    r = client.post("/api/predict?include_input=true", files={"file": ("d", data, "image/png")})
    assert r.status_code == 200
    got = r.json()["predictions"][0]
    want_input = to_mnist_form(sent)
    assert np.abs(np.array(got["input"], np.int16) - want_input).max() <= 1
    assert np.array(got["input"]).max() > 200  # light page inverted: bright ink on black
    check_answers([got], expected(reference, np.array([got["input"]], np.uint8)),
                  reference.class_names)


def test_json_other_sizes_need_mnist_preprocessing(client, reference):
    page = drawing(1).astype(int).tolist()
    assert client.post("/api/predict", json={"images": [page]}).status_code == 400
    r = client.post("/api/predict?preprocess=mnist&include_input=true", json={"images": [page]})
    assert r.status_code == 200
    assert np.array_equal(np.array(r.json()["predictions"][0]["input"]),
                          to_mnist_form(np.array(page, np.uint8)))


def _truncated_png() -> bytes:  # noise does not compress: cutting it loses pixel data
    data = png(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))
    return data[:len(data) // 2]


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(buf, format="GIF")
    return buf.getvalue()


def _bomb() -> bytes:  # 6000x6000 one-bit PNG: a few kB on the wire, 36 M pixels decoded
    buf = io.BytesIO()
    Image.new("1", (6000, 6000)).save(buf, format="PNG")
    return buf.getvalue()


GOOD = np.zeros((28, 28), int).tolist()
BAD_REQUESTS = {
    "empty json body": (400, dict(content=b"", headers={"content-type": "application/json"})),
    "no content type": (415, dict(content=b"abc")),
    "plain text": (415, dict(content=b"7", headers={"content-type": "text/plain"})),
    "invalid json": (400, dict(content=b"{\"images\": [", headers={
        "content-type": "application/json"})),
    "json without images": (400, dict(json={"pixels": [GOOD]})),
    "json images not a list": (400, dict(json={"images": "7"})),
    "json empty list": (400, dict(json={"images": []})),
    "json wrong shape": (400, dict(json={"images": [[[0] * 27] * 28]})),
    "json 1-d": (400, dict(json={"images": [[0] * 784]})),
    "json ragged": (400, dict(json={"images": [[[0] * 28] * 27 + [[0] * 5]]})),
    "json strings": (400, dict(json={"images": [[["a"] * 28] * 28]})),
    "json above 255": (400, dict(json={"images": [[[300] * 28] * 28]})),
    "json negative": (400, dict(json={"images": [[[-1] * 28] * 28]})),
    "json too many images": (400, dict(json={"images": [GOOD] * (MAX_IMAGES + 1)})),
    "json top-level list": (400, dict(json=[GOOD])),
    "oversized body": (413, dict(content=b"0" * (MAX_BYTES + 1), headers={
        "content-type": "application/json"})),
    "oversized streamed body": (413, dict(content=iter([b"0" * 100_000] * 4), headers={
        "content-type": "application/json"})),
    "not an image file": (400, dict(files={"f": ("a.png", b"hello, world", "image/png")})),
    "truncated png": (400, dict(files={"f": ("t.png", _truncated_png(), "image/png")})),
    "gif": (400, dict(files={"f": ("g.gif", _gif(), "image/gif")})),
    "empty file": (400, dict(files={"f": ("e.png", b"", "image/png")})),
    "decompression bomb": (400, dict(files={"f": ("b.png", _bomb(), "image/png")})),
    "multipart without files": (400, dict(data={"x": "1"}, files={})),
    "multipart too many files": (400, dict(files=[("f", (f"{i}.png", b"x", "image/png"))
                                                  for i in range(MAX_IMAGES + 1)])),
    "multipart without boundary": (400, dict(content=b"--x\r\n\r\n", headers={
        "content-type": "multipart/form-data"})),
    "bad preprocess": (422, dict(json={"images": [GOOD]}, params={"preprocess": "magic"})),
}


@pytest.mark.parametrize("kind", list(BAD_REQUESTS))
def test_bad_requests_get_a_one_line_json_4xx(client, kind):
    status, kwargs = BAD_REQUESTS[kind]
    if kind == "multipart without files":  # httpx sends form fields as urlencoded without files
        kwargs = dict(files={"x": (None, b"1")})
    r = client.post("/api/predict", **kwargs)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error and "\n" not in error and "Traceback" not in error


def test_other_routes_and_methods_answer_json(client):
    for method, path, status in [("get", "/api/predict", 405), ("get", "/nope", 404),
                                 ("delete", "/api/model", 405)]:
        r = getattr(client, method)(path)
        assert r.status_code == status and "error" in r.json()


def test_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    for needle in ("<canvas", "type=\"file\"", "/api/predict", "/api/model"):
        assert needle in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html and "<link" not in html and " src=" not in html


def test_openapi_documents_predict(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)


@pytest.mark.slow
def test_1000_malformed_requests_then_still_correct(client, reference, tiny_images):
    rng = np.random.default_rng(15)
    valid_png = png(tiny_images[0][0])
    kinds = ["application/json", "multipart/form-data; boundary=b", "image/png", "", "text/csv"]
    statuses = set()
    for i in range(1000):
        choice = i % 5
        if choice == 0:  # random bytes under a random content type
            body = rng.bytes(int(rng.integers(0, 400)))
            r = client.post("/api/predict", content=body,
                            headers={"content-type": kinds[int(rng.integers(len(kinds)))]})
        elif choice == 1:  # a valid PNG with random bytes flipped
            data = bytearray(valid_png)
            for pos in rng.integers(0, len(data), int(rng.integers(1, 8))):
                data[pos] = int(rng.integers(256))
            r = client.post("/api/predict", files={"f": ("x.png", bytes(data), "image/png")})
            if r.status_code == 200:  # the flips may leave a decodable image: fine
                continue
        elif choice == 2:  # random JSON structures
            junk = [None, 1, -5, 1e309, "x", [], [[]], {"images": None},
                    {"images": [[[float(v) for v in rng.normal(100, 200, 28)]] * 28]},
                    {"images": [[[0] * int(rng.integers(1, 40))] * int(rng.integers(1, 40))]}]
            r = client.post("/api/predict", content=json.dumps(junk[i % len(junk)]),
                            headers={"content-type": "application/json"})
            if r.status_code == 200:  # e.g. an in-range image of the right shape
                continue
        elif choice == 3:  # a multipart body cut short
            body = b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\n" \
                   b"Content-Type: image/png\r\n\r\n" + valid_png[: int(rng.integers(0, 80))]
            r = client.post("/api/predict", content=body,
                            headers={"content-type": "multipart/form-data; boundary=b"})
        else:  # a bad query or too many images
            r = client.post("/api/predict", params={"preprocess": str(rng.integers(1000))},
                            json={"images": [GOOD]})
        assert 400 <= r.status_code < 500, (i, r.status_code, r.text[:200])
        assert "\n" not in r.json()["error"]
        statuses.add(r.status_code)
    assert {400, 415, 422} <= statuses
    x, _ = tiny_images
    r = client.post("/api/predict", json={"images": x[:4].tolist()})
    assert r.status_code == 200
    check_answers(r.json()["predictions"], expected(reference, x[:4]), reference.class_names)
