"""Worker observability: stage latency, confidence and unknown metrics scraped from /metrics
after real requests, the release-in-service gauge, `worker.metrics_public`, and the shipped
Grafana dashboard and alert rules referencing only metrics the worker exposes."""
import json
import re
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from test_worker import app_for, blocks_image, embedders, png, releases, wait_ready  # noqa: F401 (fixtures)

from knnclip_core.serving.metrics import STAGES

DASHBOARDS = Path(__file__).resolve().parent.parent / "dashboards"


def samples(text):
    """{(sample name, frozenset(labels)): value} of a Prometheus text exposition."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(scraped, name, **labels):
    return scraped[(name, frozenset(labels.items()))]


def segment_twice(client):
    """Two JSON /segment answers and the /metrics scrape after them."""
    bodies = []
    for seed in (0, 1):
        r = client.post("/segment", files={"image": ("x.png", png(blocks_image(seed)), "image/png")})
        assert r.status_code == 200, r.text
        bodies.append(r.json())
    return bodies, samples(client.get("/metrics").text)


def test_stage_confidence_and_release_metrics(settings, releases, embedders):  # noqa: F811
    from fastapi.testclient import TestClient

    _, link = releases
    t0 = time.time()
    with TestClient(app_for(settings, link, embedders)) as client:
        wait_ready(client)
        rel = client.get("/release").json()
        bodies, m = segment_twice(client)
    assert set(bodies[0]["timings"]) == set(STAGES)
    for stage in STAGES:
        assert value(m, "knnclip_worker_stage_seconds_count", stage=stage) == 2
        expected = sum(b["timings"][stage] for b in bodies)  # rounded to 1e-6 in the JSON
        assert value(m, "knnclip_worker_stage_seconds_sum", stage=stage) == pytest.approx(expected, abs=3e-6)
    segs = [s for b in bodies for s in b["segments"]]
    assert segs and value(m, "knnclip_worker_segment_confidence_count") == len(segs)
    assert value(m, "knnclip_worker_segment_confidence_sum") == pytest.approx(
        sum(s["confidence"] for s in segs), abs=1e-6 * len(segs))
    below_half = sum(s["confidence"] <= 0.5 for s in segs)
    assert value(m, "knnclip_worker_segment_confidence_bucket", le="0.5") == below_half
    assert value(m, "knnclip_worker_segments_total") == len(segs)
    assert value(m, "knnclip_worker_segments_unknown_total") == sum(s["class"] == "unknown" for s in segs) == 0
    assert value(m, "knnclip_worker_release_info", version="v1", alias="production", embedder_id=rel["embedder_id"],
                 base_model_id=rel["base_model_id"]) == 1
    assert value(m, "knnclip_worker_release_loaded") == 1
    assert t0 <= value(m, "knnclip_worker_release_loaded_timestamp_seconds") <= time.time()
    assert t0 <= value(m, "knnclip_worker_release_last_check_timestamp_seconds") <= time.time()


def test_unknown_segments_are_counted(settings, releases, embedders):  # noqa: F811
    """Without a base model a segment below T is unknown; T above any confidence makes all unknown."""
    from fastapi.testclient import TestClient

    _, link = releases
    settings.worker.confidence_threshold = 1.01
    with TestClient(app_for(settings, link, embedders)) as client:
        wait_ready(client)
        bodies, m = segment_twice(client)
    segs = [s for b in bodies for s in b["segments"]]
    assert segs and all(s["class"] == "unknown" for s in segs)
    assert value(m, "knnclip_worker_segments_unknown_total") == value(m, "knnclip_worker_segments_total") == len(segs)


@pytest.mark.parametrize("public", [False, True])
def test_metrics_public_setting(settings, releases, embedders, public):  # noqa: F811
    from fastapi.testclient import TestClient

    _, link = releases
    settings.worker_token = "s3cret"
    settings.worker.metrics_public = public
    good = {"Authorization": "Bearer s3cret"}
    with TestClient(app_for(settings, link, embedders, start_watcher=False)) as client:
        assert client.get("/metrics").status_code == (200 if public else 401)
        assert client.get("/metrics", headers=good).status_code == 200
        assert "knnclip_worker_release_loaded 0.0" in client.get("/metrics", headers=good).text
        assert client.get("/release").status_code == 401  # everything else still needs the token
        assert client.get("/openapi.json").status_code == 401
        files = {"image": ("x.png", png(blocks_image()), "image/png")}
        assert client.post("/segment", files=files).status_code == 401
        assert client.get("/healthz").status_code == 200


def test_metrics_public_is_configured(monkeypatch):
    from knnclip_core.config import load_settings

    monkeypatch.delenv("KNNCLIP_CONFIG", raising=False)
    assert load_settings().worker.metrics_public is False
    monkeypatch.setenv("KNNCLIP_WORKER__METRICS_PUBLIC", "true")
    assert load_settings().worker.metrics_public is True


def dashboard_exprs():
    """PromQL expressions of dashboards/grafana.json (panel targets) and alerts.yaml (rules)."""
    grafana = json.loads((DASHBOARDS / "grafana.json").read_text())
    panels = [t["expr"] for p in grafana["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DASHBOARDS / "alerts.yaml").read_text())["groups"][0]["rules"]
    for rule in rules:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule.get("alert")
        assert rule["annotations"].get("summary"), rule["alert"]
    return panels, [r["expr"] for r in rules]


def balanced(expr):
    """True when (), [] and {} nest properly outside quoted strings (a cheap PromQL typo check)."""
    stack, pairs = [], {")": "(", "]": "[", "}": "{"}
    for ch in re.sub(r'"[^"]*"', '""', expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


def metric_names(exprs):
    return {n for e in exprs for n in re.findall(r"\bknnclip_[a-zA-Z0-9_:]+", e)}


def test_dashboard_and_alerts_use_exposed_metrics(settings, releases, embedders):  # noqa: F811
    from fastapi.testclient import TestClient

    _, link = releases
    with TestClient(app_for(settings, link, embedders)) as client:
        wait_ready(client)
        bad = client.post("/segment", files={"image": ("x.png", b"not an image", "image/png")})
        assert bad.status_code == 400  # so the error counter has a sample too
        _, m = segment_twice(client)
    exposed = {name for name, _ in m}
    panels, rules = dashboard_exprs()
    assert all(balanced(e) for e in panels + rules) and not balanced("sum(rate(x[5m])")
    for exprs in (panels, rules):
        missing = metric_names(exprs) - exposed
        assert not missing, f"referenced but not exposed by /metrics: {sorted(missing)}"
    assert metric_names(panels) >= {
        "knnclip_worker_requests_total", "knnclip_worker_request_seconds_bucket", "knnclip_worker_stage_seconds_bucket",
        "knnclip_worker_segments_unknown_total", "knnclip_worker_segment_confidence_bucket",
        "knnclip_worker_release_info"}
    assert metric_names(rules) >= {
        "knnclip_worker_requests_total", "knnclip_worker_request_seconds_bucket",
        "knnclip_worker_segments_unknown_total", "knnclip_worker_release_loaded",
        "knnclip_worker_release_last_check_timestamp_seconds", "knnclip_worker_reload_failing"}
    assert "knnclip_worker_no_such_metric" in metric_names(["rate(knnclip_worker_no_such_metric[5m])"])
