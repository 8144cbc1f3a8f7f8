"""Every benchmark's --json runs on small inputs and reports the product-path figures it
promises; benchmarks/README.md's figures are what the saved JSON gives."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_json(script: str, *args: str, timeout: int = 300) -> dict:
    """Run benchmarks/<script> --json and return its last stdout line as JSON."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args, "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_embed_throughput_counts_one_forward_per_image(shared_data):
    out = run_json("embed_throughput.py", "--backbone", "tiny-vit-random", "--device", "cpu", "--images", "6",
                   "--batch-size", "3", "--rounds", "1", "--repeats", "2")
    assert out["forwards_per_image"] == 1.0  # counted by the hook, not derived from the rates
    assert out["images"] == 6 and out["segments_per_image"] > 1
    ips, bare = out["images_per_s"], out["bare_images_per_s"]
    # ratio is rounded to 4 decimals and both rates to 3: allow exactly those rounding errors
    rounding = 5e-5 + (5e-4 / ips + 5e-4 / bare) * ips / bare
    assert out["ratio"] == pytest.approx(ips / bare, abs=rounding)
    assert out["pipeline_startup_s"] >= 0


@pytest.mark.slow
def test_classic_v2_throughput_gives_todays_vectors(shared_data):
    out = run_json("embed_throughput.py", "--backbone", "classic-v2", "--source", "camvid-train", "--images", "4",
                   "--batch-size", "2", "--rounds", "1", "--num-workers", "1")
    assert out["images"] == 4 and out["segments_per_image"] > 1
    assert out["max_abs_diff_vs_today"] <= 1e-5  # vectorised channels: the vectors of a memory do not move
    assert out["max_abs_diff_vs_float64"] <= 1e-4
    assert out["today_bare_images_per_s"] > 0 and out["today_segments_per_s"] > 0


@pytest.mark.slow
def test_worker_latency_uses_the_published_index():
    from knnclip_core.embedders import get_embedder
    from knnclip_core.index.choice import choose_index

    out = run_json("worker_latency.py", "--backbone", "tiny-vit-random", "--memory", "3000", "--classes", "8",
                   "--runs", "1", "--proposals", "grid", "--merge-rounds", "0")
    assert out["index"] == choose_index(3000, get_embedder("tiny-vit-random").dim).factory  # what publishing picks, not a hard-coded one
    assert out["index_chosen_by"] == "flat" and out["recall_at_10"] == 1.0
    assert out["forwards_per_image"] == 1.0
    assert out["overhead_ratio"] == pytest.approx((out["retrieval_s"] + out["fusion_s"]) / out["forward_s"], rel=0.05)


@pytest.mark.slow
def test_worker_latency_honours_an_index_override():
    out = run_json("worker_latency.py", "--backbone", "tiny-vit-random", "--memory", "3000", "--classes", "8",
                   "--runs", "1", "--proposals", "grid", "--index", "HNSW16,Flat")
    assert out["index"] == "HNSW16,Flat" and out["index_chosen_by"] == "override"
    assert "efSearch" in out["search_params"]  # tuned by the snapshot build, not hard-coded


@pytest.mark.slow
def test_budget_curve_votes_through_retrieve(shared_data):
    out = run_json("budget_curve.py", "--limit", "8", "--fractions", "0.5,1.0", "--strategies", "balanced")
    curve = out["curves"]["balanced"]
    assert [c["fraction"] for c in curve] == [0.5, 1.0]
    assert all(0.0 <= c["accuracy"] <= 1.0 for c in curve)
    assert curve[-1]["kept"] <= out["train_segments"]


@pytest.mark.slow
def test_dedup_scale_small():
    out = run_json("dedup_scale.py", "--n", "3000", "--clusters", "60", "--skip-1m")
    assert out  # the figures themselves are checked by tests/test_dedup.py against brute force


def test_benchmark_readme_figures_come_from_saved_json():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "report.py"), "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_budget_curve_accuracy_equals_a_brute_force_vote():
    """The benchmark's accuracy is retrieve's argmax; check it against numpy on seeded data."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import numpy as np
    from budget_curve import knn_accuracy

    rng = np.random.default_rng(0)
    xb = rng.standard_normal((200, 16)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    yb = rng.integers(0, 5, 200)
    xq = xb[:50] + 0.3 * rng.standard_normal((50, 16)).astype(np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    yq = yb[:50].copy()
    yq[::3] = (yq[::3] + 1) % 5  # some wrong labels, so accuracy is not trivially 1
    sims = xq @ xb.T
    top = np.argsort(-sims, axis=1)[:, :10]
    votes = np.zeros((50, 5))
    for q in range(50):
        for j in top[q]:
            votes[q, yb[j]] += np.exp(sims[q, j] / 0.1)
    expected = float((votes.argmax(1) == yq).mean())
    assert knn_accuracy(xb, yb, xq, yq, [f"c{i}" for i in range(5)], k=10) == pytest.approx(expected)


@pytest.mark.slow
def test_continual_is_deterministic_and_reports_forgetting(shared_data, tmp_path):
    args = ("--limit", "2", "--strategies", "balanced")
    first = run_json("continual.py", *args, "--out", str(tmp_path / "a"), timeout=900)
    second = run_json("continual.py", *args, "--out", str(tmp_path / "b"), timeout=900)
    assert first["matrix"] == second["matrix"]  # same seed, same matrix
    assert first["baseline"]["sequential_head"] == second["baseline"]["sequential_head"]
    for key in ("max_forgetting_own_vocab", "max_forgetting_union_vocab", "baseline_max_forgetting"):
        assert first[key] >= 0.0
    own = first["matrix"]["own"]["miou"]
    assert [v is None for v in own["ade20k"]] == [True, True, False]  # a task is scored from its release on
    assert first["releases"][-1]["rows_per_task"].keys() == {"camvid", "coco", "ade20k"}
    assert set(first["budget"]["strategies"]) == {"balanced"}
    assert (tmp_path / "a" / "continual.png").is_file()


def test_forgetting_is_the_largest_drop_from_the_best():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from continual_head import forgetting

    assert forgetting([None, 0.5, 0.7, 0.6, 0.65]) == pytest.approx(10.0)
    assert forgetting([0.4, 0.5, 0.5]) == 0.0
    assert forgetting([None, None, 0.3]) == 0.0


@pytest.mark.slow
def test_unseen_drive_keeps_the_drive_out_of_the_release(shared_data):
    out = run_json("unseen_drive.py", "--memory-limit", "30", "--limit", "2", timeout=600)
    assert out["held_out_drive"] == "0006R0" and "0006R0" not in out["memory_drives"] and out["memory_frames"] == 30
    assert out["query_frames"] == 2 and out["release_vectors"] > 0
    gt, props = out["modes"]["gt"], out["modes"]["proposals"]
    assert gt["segments"] > 0 and 0 <= gt["segment_accuracy"] <= 1 and 0 <= props["miou"] <= 1
    assert props["segment_accuracy"] is None and gt["miou"] > out["baseline_miou"]  # proposals have no GT segment to match
    assert out["threshold"]["source"] == "release-calibrated"  # the release's own T, not the settings'
    expected = (props["miou"] - out["baseline_miou"]) / (gt["miou"] - out["baseline_miou"])
    assert out["gap_closed"] == pytest.approx(expected, abs=1e-3)
