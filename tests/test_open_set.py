"""benchmarks/open_set.py: its AUROC against a brute-force pair count, and a short run on CamVid."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from open_set import auroc, main  # noqa: E402


def test_auroc_counts_pairs():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    assert auroc(pos, neg) == pytest.approx(np.mean(pairs))
    assert auroc(np.array([0.9]), np.array([0.1])) == 1.0 and np.isnan(auroc(pos, np.array([])))


@pytest.mark.slow
@pytest.mark.data
def test_open_set_runs_on_camvid(shared_data, capsys):
    import json

    root = shared_data / "camvid"
    if not root.is_dir():
        from conftest import require_or_skip

        require_or_skip(f"{root} not found")
    assert main(["--root", str(root), "--limit", "20", "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("auroc_similarity", "auroc_vote_share", "unknown_rate_left_out", "known_accuracy"):
        assert 0.0 <= r[key] <= 1.0, (key, r[key])
    assert r["higher_auroc"] in ("similarity", "vote_share") and len(r["classes"]) >= 8
    assert r["confidence"] == "similarity" and r["threshold"] == 0.6  # the defaults the README states
