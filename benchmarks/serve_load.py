"""Load test of the inspection service: N concurrent clients, M requests in total, against 127.0.0.1 only.

Either point it at a running server (``--url http://127.0.0.1:8000``) or let it start one in a subprocess:
``--weights W`` runs ``rtvp serve`` on a checkpoint, ``--fake`` serves ``rtvp.service.testing.FakePredictor``
(HTTP layer only: upload, decode, lock, JSON). Each client is a thread with its own keep-alive ``httpx.Client``;
requests are handed out from one shared counter, so exactly ``--requests`` are sent unless ``--timeout-s`` (the
whole run's budget) runs out first. Prints a table: throughput, latency p50/p95/p99/max, errors by kind, and the
server-reported inference time.

Examples:
    python benchmarks/serve_load.py --fake --clients 10 --requests 1000
    python benchmarks/serve_load.py --weights runs/exp/weights/best.pt --clients 10 --requests 1000
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --clients 4 --requests 200 --image board.png
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

MAX_CLIENTS, MAX_REQUESTS = 256, 100_000


def loopback_url(url: str) -> str:
    """Return ``url`` without a trailing slash; refuse anything but http(s) on a loopback host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ok = host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        ok = False
    if parts.scheme not in ("http", "https") or not ok:
        raise SystemExit(f"refusing {url!r}: this load test only targets 127.0.0.1 / localhost / ::1")
    return url.rstrip("/")


def synthetic_png(width: int = 640, height: int = 480) -> bytes:
    """A brushed-steel-like PNG with a bright blob (deterministic)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    img = np.clip(120 + rng.normal(0, 8, (height, 1)) + np.zeros((1, width)), 0, 255).astype(np.uint8)
    img[height // 3 : height // 2, width // 4 : width // 3] = 240
    buf = io.BytesIO()
    Image.fromarray(np.repeat(img[:, :, None], 3, axis=2)).save(buf, "PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str, str]:
    """Start ``rtvp serve`` (``--weights``) or the fake server in a subprocess; returns (process, url, what)."""
    port = free_port()
    if args.weights:
        cmd = [sys.executable, "-m", "rtvp.cli.main", "serve", "--weights", str(args.weights), "--port", str(port),
               "--device", args.device, "--log-level", "warning", "--max-queue", str(max(64, args.clients))]
        what = f"rtvp serve --weights {args.weights} (real Predictor, {args.device})"
    else:
        cmd = [sys.executable, __file__, "--serve-fake", "--port", str(port), "--fake-delay-ms",
               str(args.fake_delay_ms), "--max-queue", str(max(64, args.clients))]
        what = f"FakePredictor (delay {args.fake_delay_ms} ms per predict)"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}: {' '.join(cmd)}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url, what
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("server did not come up within 120 s")


def serve_fake(port: int, delay_ms: float, max_queue: int) -> None:
    """Hidden mode: serve the fake predictor (used as the subprocess of ``--fake``)."""
    import uvicorn

    from rtvp.service import ServeSettings, create_app
    from rtvp.service.testing import FakePredictor

    app = create_app(FakePredictor(delay_s=delay_ms / 1000.0), ServeSettings(port=port, max_queue=max_queue))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


class Run:
    """Shared state of one load run: request slots, latencies, errors, server timings."""

    def __init__(self, total: int, deadline: float) -> None:
        self.total, self.deadline = total, deadline
        self.issued = 0
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.inference_ms: list[float] = []
        self.errors: Counter[str] = Counter()

    def take(self) -> bool:
        with self.lock:
            if self.issued >= self.total or time.monotonic() >= self.deadline:
                return False
            self.issued += 1
            return True

    def record(self, seconds: float, error: str | None, inference_ms: float | None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if error:
                self.errors[error] += 1
            elif inference_ms is not None:
                self.inference_ms.append(inference_ms)


def client_loop(run: Run, url: str, path: str, image: bytes, fields: dict[str, str], headers: dict[str, str],
                request_timeout: float) -> None:
    """One client: send requests to ``path`` until the run's slots or time are used up."""
    with httpx.Client(base_url=url, timeout=request_timeout, headers=headers) as client:
        while run.take():
            t0 = time.perf_counter()
            error, inference = None, None
            try:
                r = client.post(path, files={"image": ("load.png", image, "image/png")}, data=fields)
                if r.status_code != 200:
                    error = f"HTTP {r.status_code}"
                else:
                    inference = r.json()["timing"]["inference_ms"]
            except httpx.TimeoutException:
                error = "timeout"
            except httpx.HTTPError as e:
                error = type(e).__name__
            run.record(time.perf_counter() - t0, error, inference)


def load(url: str, path: str, clients: int, requests: int, image: bytes, fields: dict[str, str],
         headers: dict[str, str], timeout_s: float, request_timeout: float) -> dict:
    """Run the load and return the summary."""
    run = Run(requests, time.monotonic() + timeout_s)
    work = (run, url, path, image, fields, headers, request_timeout)
    threads = [threading.Thread(target=client_loop, args=work) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array(run.latencies) * 1000.0
    done = len(lat)
    pct = {f"p{q}": float(np.percentile(lat, q)) if done else None for q in (50, 95, 99)}
    return {"requests": done, "planned": requests, "clients": clients, "errors": sum(run.errors.values()),
            "errors_by_kind": dict(run.errors), "wall_s": wall, "throughput_rps": done / wall if wall else 0.0,
            "latency_ms": {**pct, "mean": float(lat.mean()) if done else None,
                           "max": float(lat.max()) if done else None},
            "server_inference_ms_p50": float(np.median(run.inference_ms)) if run.inference_ms else None,
            "stopped_by_timeout": done < requests}


def table(s: dict, target: str) -> str:
    """Markdown table of a summary."""
    lat = s["latency_ms"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    rows = [("target", target), ("endpoint", s.get("endpoint", "/v1/detect")), ("clients", s["clients"]),
            ("requests sent", f"{s['requests']} / {s['planned']}"),
            ("errors", f"{s['errors']} {s['errors_by_kind'] or ''}".strip()), ("wall time", f"{s['wall_s']:.2f} s"),
            ("throughput", f"{s['throughput_rps']:.1f} req/s"), ("latency p50", f"{ms(lat['p50'])} ms"),
            ("latency p95", f"{ms(lat['p95'])} ms"), ("latency p99", f"{ms(lat['p99'])} ms"),
            ("latency max", f"{ms(lat['max'])} ms"),
            ("server inference p50", f"{ms(s['server_inference_ms_p50'])} ms"),
            ("machine", f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")]
    if s["stopped_by_timeout"]:
        rows.append(("note", "stopped by --timeout-s before all requests were sent"))
    return "\n".join(["| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = p.add_mutually_exclusive_group()
    target.add_argument("--url", help="running server, e.g. http://127.0.0.1:8000 (loopback only)")
    target.add_argument("--weights", type=Path, help="start `rtvp serve` on this checkpoint")
    target.add_argument("--fake", action="store_true", help="start a server over the fake predictor")
    p.add_argument("--clients", type=int, default=10, help="concurrent clients (threads)")
    p.add_argument("--requests", type=int, default=1000, help="requests in total")
    p.add_argument("--image", type=Path, help="image to upload (default: a synthetic 640x480 PNG)")
    p.add_argument("--prompts", default="scratch,hole,crack", help="prompts of /v1/detect")
    p.add_argument("--question", help="send /v1/ask with this question instead of /v1/detect")
    p.add_argument("--timeout-s", type=float, default=600.0, help="budget of the whole run in seconds")
    p.add_argument("--request-timeout-s", type=float, default=60.0, help="timeout of one request")
    p.add_argument("--api-key-env", help="environment variable holding the server's API key")
    p.add_argument("--device", default="cpu", help="device for --weights")
    p.add_argument("--fake-delay-ms", type=float, default=0.0, help="simulated inference time of --fake")
    p.add_argument("--json", type=Path, help="also write the summary as JSON here")
    p.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--max-queue", type=int, default=64, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.serve_fake:
        if not (args.url or args.weights or args.fake):
            p.error("give --url, --weights or --fake")
        if not (1 <= args.clients <= MAX_CLIENTS and 1 <= args.requests <= MAX_REQUESTS and args.timeout_s > 0):
            p.error(f"need 1 <= --clients <= {MAX_CLIENTS}, 1 <= --requests <= {MAX_REQUESTS}, --timeout-s > 0")
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.serve_fake:
        serve_fake(args.port, args.fake_delay_ms, args.max_queue)
        return None
    image = args.image.read_bytes() if args.image else synthetic_png()
    fields = {"question": args.question, "prompts": args.prompts} if args.question else {"prompts": args.prompts}
    path = "/v1/ask" if args.question else "/v1/detect"
    headers = {}
    if args.api_key_env:
        headers["Authorization"] = f"Bearer {os.environ[args.api_key_env]}"
    proc = None
    if args.url:
        url, target = loopback_url(args.url), args.url
    else:
        proc, url, target = start_server(args)
    try:
        warm = httpx.post(url + "/v1/detect", files={"image": ("w.png", image, "image/png")},
                          data={"prompts": args.prompts}, headers=headers, timeout=args.request_timeout_s)
        if warm.status_code != 200:
            raise SystemExit(f"warm-up request failed: {warm.status_code} {warm.text[:300]}")
        summary = load(url, path, args.clients, args.requests, image, fields, headers, args.timeout_s,
                       args.request_timeout_s)
        summary["endpoint"] = path
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    summary["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    print(table(summary, target))
    if args.json:
        args.json.write_text(json.dumps({**summary, "target": target}, indent=2))
    return summary


if __name__ == "__main__":
    main()
