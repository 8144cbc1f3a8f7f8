"""The worker's Prometheus metrics, each app in its own registry: requests and errors by
endpoint, per-stage latency of the Segmenter, retrieval confidence per segment, segments
answered `unknown`, and the release in service (labels: version, alias, embedder and base
model) with its load and check times. dashboards/grafana.json and dashboards/alerts.yaml
are written over exactly these names (tests/test_worker_metrics.py checks it).
"""
from __future__ import annotations

import time
from typing import Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..segment.release import LoadedRelease

STAGES = ("proposals", "forward", "retrieval", "base_model", "fusion", "outputs")  # Segmenter timings keys
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_CONFIDENCE = tuple(round(0.1 * i, 1) for i in range(1, 11))


class WorkerMetrics:
    """Prometheus metrics of one app, in their own registry."""

    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.latency = Histogram("knnclip_worker_request_seconds", "Request latency by endpoint.", ["endpoint"],
                                 registry=r, buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.requests = Counter("knnclip_worker_requests_total", "Requests by endpoint and status code.",
                                ["endpoint", "status"], registry=r)
        self.errors = Counter("knnclip_worker_errors_total", "Failed requests by kind.", ["kind"], registry=r)
        self.stage = Histogram("knnclip_worker_stage_seconds", "Segmenter latency per stage of one image.",
                               ["stage"], registry=r, buckets=_SECONDS)
        self.confidence = Histogram("knnclip_worker_segment_confidence",
                                    "Retrieval confidence of each answered segment.", registry=r,
                                    buckets=_CONFIDENCE)
        self.segments = Counter("knnclip_worker_segments_total", "Segments answered.", registry=r)
        self.unknown = Counter("knnclip_worker_segments_unknown_total", "Segments answered `unknown`.", registry=r)
        self.release = Gauge("knnclip_worker_release_info", "1 for the release being served.",
                             ["version", "alias", "embedder_id", "base_model_id"], registry=r)
        self.loaded = Gauge("knnclip_worker_release_loaded", "1 once a release is being served.", registry=r)
        self.loaded_at = Gauge("knnclip_worker_release_loaded_timestamp_seconds",
                               "Unix time the release in service was swapped in (0: none).", registry=r)
        self.last_check = Gauge("knnclip_worker_release_last_check_timestamp_seconds",
                                "Unix time the worker last asked the registry for a new release (0: never).",
                                registry=r)
        self.reloads = Counter("knnclip_worker_reloads_total", "Release reload attempts by outcome.",
                               ["outcome"], registry=r)
        self.reload_failing = Gauge("knnclip_worker_reload_failing",
                                    "1 while the newest release failed to load or verify.", registry=r)
        for stage in STAGES:  # every stage shows from the first scrape, so dashboards never see gaps
            self.stage.labels(stage)
        for outcome in ("ok", "failed"):
            self.reloads.labels(outcome)

    def follow(self, watcher) -> None:
        """Read the watcher's last check time at each scrape."""
        self.last_check.set_function(lambda: watcher.last_check or 0.0)

    def on_change(self, event: str, release: Optional[LoadedRelease], error: Optional[str]) -> None:
        """ReleaseWatcher hook."""
        if event == "swapped" and release is not None:
            self.release.clear()
            self.release.labels(release.version, release.alias or "", release.embedder_id,
                                release.base_model_id).set(1)
            self.loaded.set(1)
            self.loaded_at.set(time.time())
            self.reloads.labels("ok").inc()
            self.reload_failing.set(0)
        elif event == "failed":
            self.reloads.labels("failed").inc()
            self.reload_failing.set(1)

    def observe(self, result) -> None:
        """Record one SegmentationResult: its stage timings, and each segment's confidence and
        whether it was answered unknown (label < 0)."""
        for stage, seconds in result.timings.items():
            self.stage.labels(stage).observe(seconds)
        for seg in result.segments:
            self.confidence.observe(seg.confidence)
            self.segments.inc()
            if seg.label < 0:
                self.unknown.inc()
