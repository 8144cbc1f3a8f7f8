"""An evaluation as people read it: per-class IoU rows (display names, ground-truth pixels),
their compact text (worst and best N of hundreds of classes), and a confusion-matrix PNG of
the largest classes (matplotlib, no display needed)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..classnames import display_name
from .evaluate import Confusion

logger = logging.getLogger(__name__)

TOP_CLASSES = 10
MATRIX_CLASSES = 20
NAME_WIDTH = 28


def _short(name: str, width: int = NAME_WIDTH) -> str:
    return name if len(name) <= width else name[: width - 1] + "\u2026"


def per_class_rows(report: dict) -> list[dict]:
    """[{'class', 'name' (display name), 'iou', 'pixels' (ground truth)}] of an evaluation report,
    worst IoU first (ties: more pixels first, then by name)."""
    iou = report.get("per_class_iou") or {}
    pixels = report.get("per_class_pixels") or {}
    rows = [{"class": c, "name": display_name(c), "iou": float(v), "pixels": int(pixels.get(c, 0))}
            for c, v in iou.items()]
    return sorted(rows, key=lambda r: (r["iou"], -r["pixels"], r["name"]))


def per_class_lines(report: dict, top: int = TOP_CLASSES, all_classes: bool = False) -> list[str]:
    """Text lines of the per-class IoU, worst first: every class when `all_classes` or when there
    are at most 2 x `top`, else the `top` worst, a count of those left out, and the `top` best."""
    rows = per_class_rows(report)
    if not rows:
        return []
    width = min(max(len(r["name"]) for r in rows), NAME_WIDTH)

    def line(r: dict) -> str:
        return f"  {_short(r['name']):<{width}}  IoU {r['iou']:.4f}  {r['pixels']:>12,} px"

    if all_classes or len(rows) <= 2 * top:
        return [f"per-class IoU, worst first ({len(rows)} classes):"] + [line(r) for r in rows]
    return ([f"per-class IoU, worst first ({len(rows)} classes; the {top} worst and the {top} best):"]
            + [line(r) for r in rows[:top]]
            + [f"  ... {len(rows) - 2 * top} more classes (--all-classes lists every class)"]
            + [line(r) for r in rows[-top:]])


def confusion_view(conf: Confusion, max_classes: int = MATRIX_CLASSES) -> tuple[np.ndarray, list[str], list[str]]:
    """Row-normalised confusion of the `max_classes` classes with the most ground-truth pixels:
    (matrix (K, K + extra), row labels, column labels); the extra columns are 'other classes'
    (when some are left out) and 'unknown'."""
    m = conf.matrix
    names = conf.names or [str(c) for c in range(conf.n)]
    gt = m.sum(axis=1)
    order = [int(c) for c in np.argsort(-gt, kind="stable") if gt[c] > 0][:max_classes]
    rows = m[order]
    cols = [rows[:, order]]
    labels = [_short(display_name(names[c]), 22) for c in order]
    col_labels = list(labels)
    if len(order) < int((gt > 0).sum()) or len(order) < conf.n:
        cols.append((rows[:, : conf.n].sum(axis=1) - rows[:, order].sum(axis=1))[:, None])
        col_labels.append("other classes")
    cols.append(rows[:, conf.n:])
    col_labels.append("unknown")
    sub = np.concatenate(cols, axis=1).astype(np.float64)
    totals = sub.sum(axis=1, keepdims=True)
    return np.divide(sub, totals, out=np.zeros_like(sub), where=totals > 0), labels, col_labels


def confusion_png(conf: Confusion, path: Path, max_classes: int = MATRIX_CLASSES) -> Path:
    """Write the confusion view (see `confusion_view`) as a labelled heat map PNG at `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    norm, rows, cols = confusion_view(conf, max_classes)
    side = max(4.0, 0.42 * len(cols) + 2.5)
    fig = Figure(figsize=(side + 1.0, max(3.0, 0.42 * len(rows) + 2.5)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(norm if len(rows) else np.zeros((1, len(cols))), cmap="Blues", vmin=0.0, vmax=1.0,
                      aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i in range(len(rows)):
        for j in range(len(cols)):
            if norm[i, j] >= 0.01:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "#1f2933")
    present = int((conf.matrix.sum(axis=1) > 0).sum())
    shown = f"{len(rows)} of {present}" if len(rows) < present else f"all {present}"
    ax.set_title(f"Pixel confusion, share of each true class ({shown} classes present, largest first)", fontsize=9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path
