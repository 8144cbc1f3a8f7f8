"""The retrieval confidence threshold T, calibrated per release on a held-out split of its own rows.

T is in the units of the confidence (cosine units for `similarity`), so it depends on the
memory backbone's feature space: a fixed number is wrong for the next backbone. `publish`
therefore measures it on the release's own rows:

1. split the rows *by image* (seeded; `fraction` of the images, 10-20 %): every row of an
   image is on one side, so a held-out row never meets itself or a sibling segment of its
   own image in the calibration memory (`split_by_image` asserts it);
2. retrieve the held-out rows against an exact (Flat) memory of the other rows, with the
   worker's k, temperature and confidence formula;
3. the curve over T in steps of 0.01: `known_accuracy(T)` = share of held-out rows labelled
   right with confidence >= T (below T a segment is `unknown` without a base model, which
   counts wrong), `unknown_rate(T)` = share of held-out rows below T;
4. the target picks T:
   - `known_accuracy` (default, value 0.9): the highest T whose held-out known-class accuracy
     is at least `value` (as much open-set rejection as that accuracy allows); when even T = 0
     is below `value`, T = 0 (retrieval always answers) and `met` is false;
   - `unknown_rate` (value e.g. 0.05): the highest T that marks at most `value` of the
     held-out (known-class) rows `unknown`: the rate of false unknowns. The held-out rows
     are all of known classes, so this is not the rate at which a new class is caught (that
     needs a left-out-class simulation: benchmarks/open_set.py).

Held-out rows whose class has no row left in the calibration memory cannot be answered and
are not counted (reported as `held_out_rows_unseen_class`). The calibration memory lacks the
held-out images, so T is measured with slightly fewer neighbours than the release has.

`resolve_threshold(params, manifest)` is the rule every consumer (worker, `knnclip segment`,
`knnclip eval`, the promotion gate) follows: the operator's override, else the release's
calibrated T (when it was measured with the same k, temperature and confidence), else the
configured fallback.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np

from .retrieval import FlatMemory, retrieve

logger = logging.getLogger(__name__)

TARGETS = ("known_accuracy", "unknown_rate")
GRID = np.round(np.arange(0.0, 1.0001, 0.01), 2)  # thresholds of the curve
MIN_HELD_OUT = 20  # fewer answerable held-out rows than this: no calibration (too noisy)
SOURCE_RELEASE, SOURCE_OVERRIDE = "release-calibrated", "operator override"
SOURCE_PREDATES = "configured (release predates calibration)"


def split_by_image(image_ids: Sequence[str], fraction: float, seed: int = 0,
                   max_rows: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """(held_out, memory) row indices: a seeded `fraction` of the distinct images (at least
    one, at most all but one) is held out with all its rows. With `max_rows`, held-out images
    are taken in their shuffled order only while their rows fit (at least one image).

    Raises ValueError with fewer than two images, a fraction outside (0, 1), or an empty id."""
    ids = np.asarray([str(i) if i is not None else "" for i in image_ids])
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the held-out fraction must be in (0, 1), not {fraction}")
    if (ids == "").any():
        raise ValueError(f"{int((ids == '').sum())} row(s) have no image id, so they cannot be split by image")
    images, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    if len(images) < 2:
        raise ValueError(f"a split by image needs at least two images, the rows come from {len(images)}")
    order = np.random.default_rng(seed).permutation(len(images))
    m = int(min(max(round(fraction * len(images)), 1), len(images) - 1))
    pick = order[:m]
    if max_rows is not None:
        fits = np.cumsum(counts[pick]) <= max_rows
        pick = pick[: max(int(fits.sum()), 1)]
    held = np.isin(inverse, pick)
    held_out, memory = np.nonzero(held)[0], np.nonzero(~held)[0]
    check_disjoint(ids, held_out, memory)
    return held_out, memory


def check_disjoint(image_ids: Sequence[str], held_out: np.ndarray, memory: np.ndarray) -> None:
    """Raise ValueError when a row or an image is on both sides of a calibration split."""
    ids = np.asarray(image_ids).astype(str)
    rows = np.intersect1d(held_out, memory)
    if len(rows):
        raise ValueError(f"{len(rows)} row(s) are both held out and in the calibration memory (row {rows[0]})")
    both = np.intersect1d(ids[held_out], ids[memory])
    if len(both):
        raise ValueError(f"{len(both)} image(s) have rows on both sides of the calibration split "
                         f"(image {both[0]!r}); split by image")


def curve(confidence: np.ndarray, correct: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """(len(grid), 3) rows [T, known_accuracy(T), unknown_rate(T)] over held-out rows
    (module docstring), from their confidence (n,) and whether retrieval's label is right (n,)."""
    c = np.asarray(confidence, dtype=np.float64)[None, :]
    ok = np.asarray(correct, dtype=bool)[None, :]
    assert c.shape == ok.shape and c.shape[1] > 0
    above = c >= (grid[:, None] - 1e-9)
    return np.stack([grid, (above & ok).mean(axis=1), (~above).mean(axis=1)], axis=1)


def choose_threshold(table: np.ndarray, target: str, value: float) -> tuple[float, bool]:
    """(T, met) from a `curve` table for `target` (TARGETS) and its `value`."""
    if target not in TARGETS:
        raise ValueError(f"unknown calibration target {target!r}; use one of {', '.join(TARGETS)}")
    col = 1 if target == "known_accuracy" else 2
    ok = table[:, col] >= value - 1e-12 if col == 1 else table[:, col] <= value + 1e-12
    if not ok.any():
        return 0.0, False
    return float(table[np.nonzero(ok)[0].max(), 0]), True


def calibrate(xb: np.ndarray, class_names: Sequence[str], image_ids: Sequence[str], k: int, temperature: float,
              confidence_kind: str, target: str = "known_accuracy", value: float = 0.9, fraction: float = 0.15,
              seed: int = 0, max_rows: Optional[int] = 20000) -> dict:
    """Calibrate T on `xb` (n, d) L2-normalised rows with one class name and image id each
    (module docstring). Returns the JSON-ready record the manifest keeps: threshold, met,
    target, value, confidence, k, temperature, split {by, seed, fraction, images, held_out_images,
    memory_images, held_out_rows, memory_rows, held_out_rows_unseen_class}, held_out figures
    at T and at T = 0, curve [[T, known_accuracy, unknown_rate], ...].
    Raises ValueError for an unknown target or rows that cannot be split by image."""
    if target not in TARGETS:
        raise ValueError(f"unknown calibration target {target!r}; use one of {', '.join(TARGETS)}")
    names = np.asarray(list(map(str, class_names)))
    ids = np.asarray([str(i) if i is not None else "" for i in image_ids])
    assert len(names) == len(xb) == len(ids), (len(xb), len(names), len(ids))
    held, mem = split_by_image(ids, fraction, seed, max_rows)
    vocabulary = sorted(set(names[mem]))
    where = {n: i for i, n in enumerate(vocabulary)}
    truth = np.array([where.get(n, -1) for n in names[held]])
    answerable = truth >= 0
    split = {"by": "image", "seed": int(seed), "fraction": float(fraction), "images": int(len(np.unique(ids))),
             "held_out_images": int(len(np.unique(ids[held]))), "memory_images": int(len(np.unique(ids[mem]))),
             "held_out_rows": int(len(held)), "memory_rows": int(len(mem)),
             "held_out_rows_unseen_class": int((~answerable).sum())}
    record = {"target": target, "value": float(value), "confidence": confidence_kind, "k": int(k),
              "temperature": float(temperature), "split": split}
    if answerable.sum() < MIN_HELD_OUT:
        return {**record, "threshold": None, "met": False,
                "skipped": f"only {int(answerable.sum())} held-out rows of classes the rest of the memory has "
                           f"(at least {MIN_HELD_OUT} are needed)"}
    memory = FlatMemory(xb[mem], np.array([where[n] for n in names[mem]]), vocabulary)
    r = retrieve(memory, xb[held[answerable]], k, temperature, vocabulary, confidence_kind=confidence_kind)
    answered = r.P.sum(axis=1) > 0
    correct = answered & (r.P.argmax(axis=1) == truth[answerable])
    table = curve(r.confidence, correct)
    T, met = choose_threshold(table, target, value)
    at = table[int(np.argmin(np.abs(table[:, 0] - T)))]
    record.update({"threshold": T, "met": met,
                   "held_out": {"known_accuracy": round(float(at[1]), 4), "unknown_rate": round(float(at[2]), 4),
                                "known_accuracy_no_threshold": round(float(correct.mean()), 4),
                                "rows": int(answerable.sum())},
                   "curve": [[float(t), round(float(a), 4), round(float(u), 4)] for t, a, u in table]})
    logger.info("calibrated T = %.2f (%s %s, met %s) on %d held-out rows of %d images", T, target, value, met,
                int(answerable.sum()), split["held_out_images"])
    return record


def resolve_threshold(params, manifest: Optional[dict]) -> tuple[float, str]:
    """(T, where it came from) for SegmentParams `params` over a release `manifest`:
    params.confidence_threshold when set (SOURCE_OVERRIDE); else the manifest's calibrated T
    when it was measured with params' k, temperature and confidence (SOURCE_RELEASE); else
    params.fallback_threshold, with the reason ('configured (...)')."""
    if params.confidence_threshold is not None:
        return float(params.confidence_threshold), SOURCE_OVERRIDE
    cal = (manifest or {}).get("calibration")
    fallback = float(params.fallback_threshold)
    if not cal:
        return fallback, SOURCE_PREDATES
    if cal.get("threshold") is None:
        return fallback, f"configured (release not calibrated: {cal.get('skipped') or 'no threshold'})"
    same = (cal.get("confidence") == params.confidence and int(cal.get("k", -1)) == int(params.k)
            and abs(float(cal.get("temperature", -1)) - float(params.temperature)) < 1e-9)
    if not same:
        return fallback, (f"configured (release calibrated for confidence {cal.get('confidence')}, k {cal.get('k')}, "
                          f"temperature {cal.get('temperature')}; the worker uses {params.confidence}, k {params.k}, "
                          f"temperature {params.temperature})")
    return float(cal["threshold"]), SOURCE_RELEASE


def threshold_line(cal: Optional[dict]) -> str:
    """One sentence saying what T a calibration record chose and on which split."""
    if not cal:
        return "not calibrated (published before calibration): the configured T applies"
    s = cal.get("split") or {}
    if cal.get("threshold") is None:
        return f"not calibrated ({cal.get('skipped')}): the configured T applies"
    h = cal.get("held_out") or {}
    goal = f"{cal['target']} {cal['value']:g}" + ("" if cal.get("met") else " (not reachable: T = 0)")
    return (f"T = {cal['threshold']:.2f} for {goal}, confidence {cal['confidence']}, k {cal['k']}; held out "
            f"{s.get('held_out_images')} of {s.get('images')} images ({s.get('held_out_rows')} rows, seed "
            f"{s.get('seed')}, fraction {s.get('fraction')}): known accuracy {h.get('known_accuracy')}, "
            f"unknown rate {h.get('unknown_rate')} (no threshold: {h.get('known_accuracy_no_threshold')})")


def calibration_settings(settings) -> Optional[dict]:
    """What a release's calibration depends on (settings.publish.calibration and the worker's
    k, temperature, confidence); None when calibration is off."""
    c, w = settings.publish.calibration, settings.worker
    if not c.enabled:
        return None
    return {"target": c.target, "value": c.value, "fraction": c.fraction, "seed": c.seed, "max_rows": c.max_rows,
            "k": w.k, "temperature": w.temperature, "confidence": w.confidence}


def calibrate_release(settings, xb: np.ndarray, class_names: Sequence[str], image_ids: Sequence[str]) -> Optional[dict]:
    """`calibrate` with `calibration_settings(settings)`; None when calibration is off. Rows that
    cannot be split by image give a record with threshold None and the reason (`skipped`)."""
    cs = calibration_settings(settings)
    if cs is None:
        return None
    if cs["target"] not in TARGETS:
        raise ValueError(f"publish.calibration.target is {cs['target']!r}; use one of {', '.join(TARGETS)}")
    try:
        return calibrate(xb, class_names, image_ids, cs["k"], cs["temperature"], cs["confidence"], cs["target"],
                         cs["value"], cs["fraction"], cs["seed"], cs["max_rows"])
    except ValueError as exc:
        logger.warning("the release is not calibrated: %s", exc)
        return {**{k: cs[k] for k in ("target", "value", "confidence", "k", "temperature")},
                "split": {"by": "image", "seed": cs["seed"], "fraction": cs["fraction"]},
                "threshold": None, "met": False, "skipped": str(exc)}
