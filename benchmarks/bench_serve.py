"""Serving figures of a selective run: back ends, HTTP latency and throughput, start-up, predict.

Prints, for a run folder made by ``notsure selective``:

* per back end (ONNX Runtime, torch): start-up in a fresh process (import + load, to the first
  decision), steady images/s on the 10,000 MNIST test images with 1 and 2 threads, and the
  achieved GFLOP/s (multiply-adds x 2 counted from the network's layers);
* ``notsure serve``: seconds from launch to the first answered request; p50/p99 latency of
  single-image requests with 1 and 8 concurrent clients on loopback (keep-alive connections,
  from the standard library's light http.client and from httpx; the clients share the server's
  cores, so the lighter one measures the server more closely); images/s of
  batch requests (JSON, 256 images each);
* ``notsure predict`` end to end on the 60,000 MNIST training images, per back end.

Targets (issue 15): p99 <= 20 ms at 8 clients; first answer within 3 s; predict end to end
>= 90 % of the in-process scoring rate and >= 5,000 images/s. Figures are noisy on a shared
machine; run it when the machine is quiet, e.g.

    NOTSURE_DATA_DIR=../shared/data python benchmarks/bench_serve.py RUN_DIR
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def conv_flops(models, image_shape) -> float:
    """FLOPs (2 x multiply-adds) of one image through one member: convolutions and head."""
    import torch

    total = 0.0
    hooks = []

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
            total += 2.0 * output.numel() * k / module.groups
        elif isinstance(module, torch.nn.Linear):
            total += 2.0 * module.in_features * module.out_features

    net = models[0]
    for m in net.modules():
        hooks.append(m.register_forward_hook(count))
    with torch.inference_mode():
        net.eval()(torch.zeros((1, *image_shape)))
    for h in hooks:
        h.remove()
    return total


def data_dir() -> Path:
    path = Path(os.environ.get("NOTSURE_DATA_DIR", "../shared/data")) / "mnist"
    if not path.is_dir():
        sys.exit(f"MNIST not found in {path}; set NOTSURE_DATA_DIR")
    return path


def env_for() -> dict:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def startup(run: str, backend: str) -> tuple[float, float]:
    """Wall and CPU seconds for a fresh Python to import, load the run and decide one image."""
    code = ("import time; t=time.perf_counter(); import numpy as np;"
            "from notsure.deploy.engine import Engine;"
            f"e=Engine.load({run!r}, {backend!r}); e.predict(np.zeros((1,28,28),np.uint8));"
            "print(time.perf_counter()-t)")
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env_for(), check=True)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return float(out.stdout.strip()), (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)


def steady_rate(engine, x: np.ndarray) -> tuple[float, float]:
    """Images per wall second and per CPU second (all threads) of ``engine.predict(x)``.
    On a shared machine the CPU-second rate is the steadier figure."""
    engine.predict(x[:256])  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    engine.predict(x)
    return len(x) / (time.perf_counter() - t0), len(x) / (time.process_time() - c0)


def bench_backends(run: str, x: np.ndarray) -> dict:
    from notsure.deploy.engine import Engine

    rows = {}
    for backend in ("onnx", "torch"):
        row = dict(zip(("startup_s", "startup_cpu_s"), startup(run, backend), strict=True))
        for threads in (1, 2):
            engine = Engine.load(run, backend, threads=threads)
            wall, cpu = steady_rate(engine, x)
            row[f"images_per_s_{threads}t"] = wall
            row[f"images_per_cpu_s_{threads}t"] = cpu
        rows[backend] = row
    from notsure.deploy.predictor import SelectivePredictor

    p = SelectivePredictor.load(run)  # with its torch networks, to count their FLOPs
    flops = conv_flops(p.networks(), p.image_shape)
    # The routed rule runs only the answering fold's members on each image.
    k = p.members if p.rule == "routed" else p.n_models
    print(f"\nback ends on {len(x):,} images ({p.n_models} members, {k} run per image "
          f"({p.rule} rule), {flops / 1e6:.1f} MFLOP per image per member; "
          f"{k * flops / 1e6:.0f} MFLOP per image):")
    for backend, row in rows.items():
        print(f"  {backend:5s} start-up {row['startup_s']:.2f} s wall, "
              f"{row['startup_cpu_s']:.2f} CPU-seconds")
        for t in (1, 2):
            wall, cpu = row[f"images_per_s_{t}t"], row[f"images_per_cpu_s_{t}t"]
            print(f"        {t} thread{'s' if t > 1 else ' '}: {wall:,.0f} images/s wall "
                  f"({wall * k * flops / 1e9:.1f} GFLOP/s); {cpu:,.0f} images per CPU-second "
                  f"({cpu * k * flops / 1e9:.1f} GFLOP per CPU-second)")
    return {"members": p.n_models, "members_per_image": k,
            "mflop_per_image_member": flops / 1e6, "backends": rows}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latencies(url: str, bodies: list[str], clients: int, requests: int,
              client: str = "stdlib") -> dict:
    """p50/p99 latency (ms) of ``requests`` single-image requests from ``clients`` threads, each
    on its own keep-alive connection. The clients share the server's cores, so the lighter the
    client, the more the figure measures the server: ``stdlib`` (http.client, about 0.3 ms of
    CPU per request here) or ``httpx`` (about 2 ms)."""
    import http.client
    from urllib.parse import urlsplit

    import httpx

    host, port = urlsplit(url).hostname, urlsplit(url).port
    times: list[float] = []
    lock = threading.Lock()
    headers = {"content-type": "application/json"}

    def worker(offset: int, n: int) -> None:
        mine = []
        if client == "httpx":
            c = httpx.Client(timeout=10)

            def post(body: str) -> tuple[int, bytes]:
                r = c.post(url + "/api/predict", content=body, headers=headers)
                return r.status_code, r.content
        else:
            c = http.client.HTTPConnection(host, port, timeout=10)

            def post(body: str) -> tuple[int, bytes]:
                c.request("POST", "/api/predict", body=body, headers=headers)
                r = c.getresponse()
                return r.status, r.read()
        for j in range(n):
            t = time.perf_counter()
            status, content = post(bodies[(offset + j) % len(bodies)])
            mine.append(time.perf_counter() - t)
            assert status == 200, content
        c.close()
        with lock:
            times.extend(mine)

    worker(0, 20)  # warm-up
    times.clear()
    threads = [threading.Thread(target=worker, args=(i * 37, requests // clients))
               for i in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    ms = np.array(times) * 1000
    return {"requests": len(ms), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "requests_per_s": len(ms) / wall}


def bench_server(run: str, x: np.ndarray, requests: int) -> dict:
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "notsure", "serve", run, "--port", str(port),
                             "--quiet"], env=env_for(), stderr=subprocess.DEVNULL)
    one = {"images": [x[0].tolist()]}
    try:
        with httpx.Client(timeout=10) as client:
            while True:
                try:
                    if client.post(url + "/api/predict", json=one).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.02)
                if proc.poll() is not None or time.perf_counter() - t0 > 120:
                    sys.exit("the server did not start")
        first = time.perf_counter() - t0
        result = {"first_answer_s": first}
        bodies = [json.dumps({"images": [x[i].tolist()]}) for i in range(256)]
        for kind in ("stdlib", "httpx"):
            for clients in (1, 8):
                result[f"{clients}_clients_{kind}"] = latencies(url, bodies, clients, requests,
                                                                kind)
        batch = json.dumps({"images": x[:256].tolist()})
        with httpx.Client(timeout=60) as client:
            client.post(url + "/api/predict", content=batch,
                        headers={"content-type": "application/json"})
            t = time.perf_counter()
            n_batches = 10
            for _ in range(n_batches):
                r = client.post(url + "/api/predict", content=batch,
                                headers={"content-type": "application/json"})
                assert r.status_code == 200
            result["batch_images_per_s"] = n_batches * 256 / (time.perf_counter() - t)
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"\nnotsure serve: first answer {result['first_answer_s']:.2f} s after launch")
    for kind in ("stdlib", "httpx"):
        for clients in (1, 8):
            r = result[f"{clients}_clients_{kind}"]
            print(f"  {clients} client{'s' if clients > 1 else ''} ({kind}): {r['requests']} "
                  f"single-image requests, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                  f"{r['requests_per_s']:.0f} requests/s")
    print(f"  batch requests (256 images, JSON): {result['batch_images_per_s']:,.0f} images/s")
    return result


def bench_predict(run: str, images: Path, backends: list[str]) -> dict:
    """Wall and CPU seconds of ``notsure predict`` in a fresh process, start-up included."""
    result = {}
    n = 60_000
    print(f"\nnotsure predict end to end on {images.name} ({n:,} images):")
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp:
            c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "notsure", "predict", run, str(images),
                            "--out", str(Path(tmp) / "p.csv"), "--backend", backend, "--quiet"],
                           env=env_for(), check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
        result[backend] = {"wall_s": wall, "cpu_s": cpu, "images_per_s": n / wall}
        print(f"  {backend:5s} {wall:.2f} s wall ({n / wall:,.0f} images/s), {cpu:.2f} CPU-seconds")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="run folder of `notsure selective`")
    parser.add_argument("--requests", type=int, default=400,
                        help="single-image requests per latency measurement (default 400)")
    parser.add_argument("--images", type=int, default=10_000,
                        help="MNIST test images for the back-end rates (default all 10,000)")
    parser.add_argument("--predict-backends", nargs="*", default=["onnx", "torch"],
                        help="back ends to time `notsure predict` with (none: skip)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    from notsure.data.idx import read_idx

    mnist = data_dir()
    x = read_idx(mnist / "t10k-images-idx3-ubyte.gz")
    figures = {
        "cpus": len(os.sched_getaffinity(0)),
        "load_average": os.getloadavg(),
        "backends": bench_backends(args.run, x[:args.images]),
        "serve": bench_server(args.run, x, args.requests),
        "predict": bench_predict(args.run, mnist / "train-images-idx3-ubyte.gz",
                                 args.predict_backends),
    }
    print(f"\nload average {figures['load_average'][0]:.1f} on {figures['cpus']} CPUs "
          "(figures are noisy when the machine is shared)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
