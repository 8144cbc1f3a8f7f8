"""The worker under a bounded, self-stopping loopback load while the alias moves: clients
post images for a fixed time while promote and rollback move `production` between two
releases; every request must answer 200 from one of the two releases (zero failed
requests), with latency percentiles. Then hostile clients: an unauthenticated 300 MB
upload, a declared 2 GB body, an undeclared oversized stream and a slow body must be
refused before they cost disk or CPU (few bytes read, answered in seconds), and a
4000x3000 JPEG is answered at reduced scale."""
from __future__ import annotations

import io
import random
import threading
import time
from pathlib import Path

from benchmarks.fault_scenarios import common

DEFAULT_CASES = 20  # clients; 30 s of load at this size
MB = 1024 * 1024
TOKEN = "load-test-token"


def _load(base: str, image: bytes, clients: int, seconds: float, mover) -> dict:
    import httpx

    lat, answers, failures = [], [], []
    stop = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def client():
        with httpx.Client(base_url=base, timeout=60, headers=headers) as c:
            while time.monotonic() < stop:
                t = time.perf_counter()
                try:
                    r = c.post("/segment", files={"image": ("x.png", image, "image/png")})
                    if r.status_code == 200:
                        answers.append(r.json()["release"]["version"])
                        lat.append(time.perf_counter() - t)
                    else:
                        failures.append(f"{r.status_code} {r.text[:120]}")
                except Exception as exc:  # noqa: BLE001
                    failures.append(repr(exc)[:160])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    moving = threading.Thread(target=mover, args=(stop,))
    for t in threads + [moving]:
        t.start()
    for t in threads + [moving]:
        t.join(seconds + 120)
    lat.sort()

    def pct(q):
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1) if lat else None

    return {"requests": len(lat) + len(failures), "failed": failures, "answers": answers,
            "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)}}


def _hostile(base: str, settings) -> list[dict]:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    limit_s = settings.worker.body_timeout_s
    checks = []
    r = common.raw_post(base, "/segment", 300 * MB, {}, timeout=120)
    checks.append({"what": "unauthenticated 300 MB upload", **r, "ok": r["status"] == 401 and r["sent"] < 16 * MB})
    r = common.raw_post(base, "/segment", 2048 * MB, auth, declare=2048 * MB, timeout=60)
    checks.append({"what": "declared 2 GB body", **r, "ok": r["status"] == 413 and r["seconds"] < 5})
    r = common.raw_post(base, "/segment", 200 * MB, auth, declare=None, timeout=120)
    checks.append({"what": "undeclared 200 MB stream", **r, "ok": r["status"] == 413 and r["sent"] < 40 * MB})
    r = common.raw_post(base, "/segment", 4000, auth, chunk=10, rate_bps=20, timeout=limit_s + 30)
    checks.append({"what": "slow body (20 B/s)", **r, "ok": r["status"] == 408 and r["seconds"] < limit_s + 5})
    r = common.raw_post(base, "/docs", 0, {}, timeout=10)
    checks.append({"what": "unauthenticated /docs", **r, "ok": r["status"] == 401})
    return checks


def _big_jpeg(base: str) -> dict:
    import httpx
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((4000, 3000), Image.BILINEAR).save(buf, format="JPEG", quality=85)
    t = time.perf_counter()
    r = httpx.post(f"{base}/segment", files={"image": ("big.jpg", buf.getvalue(), "image/jpeg")},
                   headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300)
    seconds = time.perf_counter() - t
    scale = r.json().get("scale") if r.status_code == 200 else None
    return {"what": "4000x3000 JPEG", "status": r.status_code, "seconds": round(seconds, 2), "scale": scale,
            "ok": r.status_code == 200 and scale is not None and scale < 1}


def run(workdir: Path, cases: int = DEFAULT_CASES, seed: int = 0) -> dict:
    """`cases` clients for 30 s (fewer seconds below 20 clients). Returns the report."""
    import os

    from knnclip_core.config import load_settings
    from knnclip_core.serving.service import create_app
    from registry.load import load_release
    from registry.publish import publish_snapshot
    from registry.releases import promote, rollback
    from registry.store import open_registry
    from serving.worker_source import RegistryReleaseSource

    rng = random.Random(seed)
    clients, seconds = min(cases, 20), (30.0 if cases >= 20 else max(3.0, float(cases)))
    home, data = common.published_workspace(workdir, seed=13)
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        settings = load_settings(home=str(home), worker_token=TOKEN)
        settings.worker.body_timeout_s = 3.0
        ctx = open_registry(settings)
        publish_snapshot(ctx, load_release(1, ctx=ctx).snapshot.path, alias="")  # version 2, same content
        promote(ctx, 1, "production", force=True, evaluator=None)
        moves = []

        def mover(stop):
            target = 2
            while time.monotonic() < stop - 1:
                time.sleep(rng.uniform(0.5, 1.5))
                moves.append(promote(ctx, target, "production", force=True, evaluator=None)["version"]
                             if target == 2 else rollback(ctx, "production")["version"])
                target = 1 if target == 2 else 2

        image = (data / "images" / sorted(p.name for p in (data / "images").iterdir())[0]).read_bytes()
        app = create_app(RegistryReleaseSource("production", settings), settings, poll_seconds=0.1)
        with common.serving(app, timeout=120, ready=True) as base:
            load = _load(base, image, clients, seconds, mover)
            hostile = _hostile(base, settings)
            big = _big_jpeg(base)
    finally:
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    wrong = [a for a in load["answers"] if a not in ("1", "2")]
    bad_hostile = [h for h in hostile + [big] if not h["ok"]]
    return {"cases": load["requests"] + len(hostile) + 1,
            "lost_or_corrupted": len(load["failed"]) + len(wrong) + len(bad_hostile),
            "tracebacks": sum(f.startswith("500") for f in load["failed"]),  # an unhandled error answers 500
            "clients": clients, "load_seconds": seconds, "requests": load["requests"],
            "failed_requests": load["failed"][:5], "alias_moves": len(moves),
            "answered_by": {v: load["answers"].count(v) for v in sorted(set(load["answers"]))},
            "latency_ms": load["latency_ms"], "hostile": hostile, "large_jpeg": big}
