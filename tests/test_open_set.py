"""benchmarks/open_set.py: its AUROC against a brute-force pair count, its two query splits
disjoint (T chosen on one, reported on the other), and a short run on CamVid; the continual
baselines (nearest class mean, replay exemplars) against numpy."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from open_set import auroc, main, split_drive  # noqa: E402


def test_auroc_counts_pairs():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    assert auroc(pos, neg) == pytest.approx(np.mean(pairs))
    assert auroc(np.array([0.9]), np.array([0.1])) == 1.0 and np.isnan(auroc(pos, np.array([])))


def test_calibration_and_report_splits_share_no_frame():
    images = np.array([f"0006R0_f{i % 7:03d}" for i in range(40)] + [f"0001TP_f{i:03d}" for i in range(5)])
    cal, rep = split_drive(images, "0006R0")
    assert len(cal) + len(rep) == 40 and not set(cal) & set(rep)
    assert not set(images[cal]) & set(images[rep])
    assert max(images[cal]) < min(images[rep])  # contiguous halves in frame order


def test_nearest_class_mean_and_exemplars():
    from continual_head import NearestClassMean, exemplars

    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 8)).astype(np.float32)
    labels = list(rng.choice(["a", "b", "c"], 60))
    ncm = NearestClassMean()
    ncm.fit(X, labels)
    lab = np.asarray(labels)
    means = np.stack([X[lab == c].mean(0) for c in "abc"])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    assert ncm.predict(X) == ["abc"[i] for i in (X @ means.T).argmax(1)]
    assert set(ncm.predict(X, allowed={"a", "c"})) <= {"a", "c"}
    ex_X, ex_labels = exemplars(X, labels, 2, seed=0)
    assert sorted(ex_labels) == ["a", "a", "b", "b", "c", "c"]
    assert all(any(np.array_equal(r, x) for x in X) for r in ex_X)


@pytest.mark.slow
@pytest.mark.data
def test_open_set_runs_on_camvid(shared_data, capsys, tmp_path):
    import json

    root = shared_data / "camvid"
    if not root.is_dir():
        from conftest import require_or_skip

        require_or_skip(f"{root} not found")
    assert main(["--root", str(root), "--limit", "80", "--drive", "0001TP", "--cache", str(tmp_path), "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for kind in ("similarity", "vote_share", "top1", "mean_cosine"):
        row = r["confidences"][kind]
        assert 0.0 <= row["auroc_report"] <= 1.0 and 0.0 <= row["report"]["known_accuracy"] <= 1.0
    assert r["default_confidence"] in r["confidences"] and r["product_confidence"] == "top1"
    assert r["release_target_configured"] == "known_accuracy=0.95"  # the default the README states
