"""The alternatives a team would otherwise pick for continual vocabulary growth, on the same
pooled features (the memory's own rows): a linear softmax head fine-tuned on each new task
without replay (`sequential_head`), the same with a few replay exemplars per earlier class
(`replay_head`, REPLAY_PER_CLASS rows kept per class), a head retrained from scratch on all
kept rows at every release (`retrained_head`; after the last release it is the joint upper
bound), and a nearest-class-mean classifier over all kept rows (`nearest_class_mean`, cosine
to each class's L2-normalised mean vector). Used by benchmarks/continual.py."""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from knnclip_core.evaluation.evaluate import Confusion

STEPS = 300          # full-batch Adam steps per training
LEARNING_RATE = 0.05
WEIGHT_DECAY = 1e-4
REPLAY_PER_CLASS = 5  # exemplars kept per class for the replay head (seeded pick)
BASELINES = ("sequential_head", "replay_head", "retrained_head", "nearest_class_mean")


def forgetting(row: list) -> float:
    """Largest drop (in points, x100) of a metric from its best earlier value; None entries
    (releases before the task arrived) are skipped."""
    best, worst_drop = None, 0.0
    for v in row:
        if v is None:
            continue
        best = v if best is None else max(best, v)
        worst_drop = max(worst_drop, best - v)
    return 100.0 * worst_drop


class LinearHead:
    """Softmax regression over a growing class list (new classes add rows)."""

    def __init__(self, dim: int, seed: int):
        import torch

        self.classes: list[str] = []
        self.gen = torch.Generator().manual_seed(seed)
        self.W = torch.zeros((0, dim))
        self.b = torch.zeros(0)

    def grow(self, names) -> None:
        import torch

        new = [n for n in dict.fromkeys(names) if n not in self.classes]
        if new:
            self.classes += new
            self.W = torch.cat([self.W, 0.01 * torch.randn((len(new), self.W.shape[1]), generator=self.gen)])
            self.b = torch.cat([self.b, torch.zeros(len(new))])

    def fit(self, X: np.ndarray, labels: list[str]) -> float:
        """Train on (X, labels) only (no replay); returns seconds."""
        import torch

        t0 = time.perf_counter()
        self.grow(labels)
        index = {c: i for i, c in enumerate(self.classes)}
        x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        y = torch.tensor([index[c] for c in labels])
        W = self.W.clone().requires_grad_(True)
        b = self.b.clone().requires_grad_(True)
        opt = torch.optim.Adam([W, b], lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        for _ in range(STEPS):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(x @ W.T + b, y)
            loss.backward()
            opt.step()
        self.W, self.b = W.detach(), b.detach()
        return time.perf_counter() - t0

    def predict(self, X: np.ndarray, allowed: Optional[set] = None) -> list[str]:
        """Class name per row, the argmax over `allowed` classes (all when None)."""
        logits = X.astype(np.float32) @ self.W.numpy().T + self.b.numpy()
        if allowed is not None:
            logits[:, [i for i, c in enumerate(self.classes) if c not in allowed]] = -np.inf
        return [self.classes[i] for i in logits.argmax(axis=1)]

    @property
    def bytes(self) -> int:
        return int((self.W.numel() + self.b.numel()) * 4)


class NearestClassMean:
    """Cosine to each class's L2-normalised mean vector over every row seen."""

    def __init__(self):
        self.classes: list[str] = []
        self.means = np.zeros((0, 0), np.float32)

    def fit(self, X: np.ndarray, labels: list[str]) -> float:
        """Class means of (X, labels); returns seconds."""
        t0 = time.perf_counter()
        self.classes = sorted(set(labels))
        lab = np.asarray(labels)
        means = np.stack([X[lab == c].mean(axis=0) for c in self.classes]).astype(np.float32)
        self.means = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        return time.perf_counter() - t0

    def predict(self, X: np.ndarray, allowed: Optional[set] = None) -> list[str]:
        sims = X.astype(np.float32) @ self.means.T
        if allowed is not None:
            sims[:, [i for i, c in enumerate(self.classes) if c not in allowed]] = -np.inf
        return [self.classes[i] for i in sims.argmax(axis=1)]

    @property
    def bytes(self) -> int:
        return int(self.means.nbytes)


def exemplars(X: np.ndarray, labels: list[str], per_class: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """At most `per_class` rows of each class (seeded pick)."""
    rng = np.random.default_rng(seed)
    lab = np.asarray(labels)
    keep = np.concatenate([rng.permutation(np.nonzero(lab == c)[0])[:per_class] for c in sorted(set(labels))])
    return X[np.sort(keep)], [labels[i] for i in np.sort(keep)]


def scores(pred: list[str], truth: list[str], areas: np.ndarray, classes: list[str]) -> dict:
    """Segment accuracy and area-weighted mIoU (the pixel mIoU of painted ground-truth masks)."""
    index = {c: i for i, c in enumerate(classes)}
    conf = Confusion(len(classes))
    g = np.array([index[t] for t in truth])
    p = np.array([index.get(c, len(classes)) for c in pred])
    np.add.at(conf.matrix, (g, p), areas.astype(np.int64))
    rep = conf.scores(classes)
    return {"miou": round(rep["miou"], 6), "segment_accuracy": round(float(np.mean(g == p)), 6)}


class HeadBaseline:
    """The BASELINES and the joint head on the memory's rows, evaluated on the same tasks and
    protocols as the kNN memory (`matrices[name]`; `matrix` is the sequential head's)."""

    def __init__(self, seq, loaded, cmap, seed: int = 0):
        from knnclip_core.embedders import get_embedder

        self.loaded, self.cmap, self.seed = loaded, cmap, seed
        self.embedder = get_embedder(seq.backbone, device="cpu")
        self.eval = [self._eval_features(lt) for lt in loaded]
        self.names = [lt.task.name for lt in loaded]
        self.head = LinearHead(self.embedder.dim, seed)
        self.replay = LinearHead(self.embedder.dim, seed)
        self.rows: list[tuple[np.ndarray, list[str]]] = []
        self.matrices = {name: {p: {m: {n: [None] * len(loaded) for n in self.names}
                                    for m in ("miou", "segment_accuracy")} for p in ("own", "union")}
                         for name in BASELINES}
        self.matrix = self.matrices["sequential_head"]
        self.costs: list[dict] = []

    def _eval_features(self, lt) -> dict:
        """The memory backbone's vectors of every ground-truth segment of a task."""
        xs, labels, areas = [], [], []
        for s in lt.samples:
            masks = [np.asarray(m, bool) for _, m in s.segments]
            xs.append(self.embedder.embed_masks(s.image, masks))
            labels += [self.cmap.canonical(n) for n, _ in s.segments]
            areas += [int(m.sum()) for m in masks]
        return {"X": np.concatenate(xs), "labels": labels, "areas": np.asarray(areas),
                "classes": sorted({self.cmap.canonical(c) for c in lt.classes} | set(labels))}

    def _evaluate(self, head, upto: int) -> dict:
        out = {"own": {}, "union": {}}
        for name, ev in zip(self.names[:upto], self.eval[:upto]):
            own = head.predict(ev["X"], allowed=set(ev["classes"]))
            out["own"][name] = scores(own, ev["labels"], ev["areas"], ev["classes"])
            union_classes = list(dict.fromkeys([*ev["classes"], *head.classes]))
            out["union"][name] = scores(head.predict(ev["X"]), ev["labels"], ev["areas"], union_classes)
        return out

    def add_task(self, r: int, kept) -> None:
        """Fine-tune on release r's new task (its rows in the kept memory) and evaluate."""
        name = self.names[r]
        sel = [i for i, d in enumerate(kept.datasets) if d == name]
        X = kept.vectors[sel]
        labels = [self.cmap.canonical(kept.class_names[i]) for i in sel]
        old = [(x, ls) for x, ls in self.rows]
        self.rows.append((X, labels))
        seconds = self.head.fit(X, labels)
        replay = [exemplars(x, ls, REPLAY_PER_CLASS, self.seed + i) for i, (x, ls) in enumerate(old)]
        self.replay.fit(np.concatenate([X, *(x for x, _ in replay)]), labels + [c for _, ls in replay for c in ls])
        all_X = np.concatenate([x for x, _ in self.rows])
        all_labels = [c for _, ls in self.rows for c in ls]
        retrained = LinearHead(self.embedder.dim, self.seed)
        retrain_seconds = retrained.fit(all_X, all_labels)
        ncm = NearestClassMean()
        ncm.fit(all_X, all_labels)
        for baseline, model in (("sequential_head", self.head), ("replay_head", self.replay),
                                ("retrained_head", retrained), ("nearest_class_mean", ncm)):
            for p, by_task in self._evaluate(model, r + 1).items():
                for task, figures in by_task.items():
                    for m, v in figures.items():
                        self.matrices[baseline][p][m][task][r] = v
        self.costs.append({"task": name, "train_seconds": round(seconds, 3), "rows": len(sel),
                           "head_bytes": self.head.bytes, "retrain_seconds": round(retrain_seconds, 3),
                           "retrain_rows": len(all_labels), "replay_rows": sum(len(ls) for _, ls in replay)})

    def joint(self) -> dict:
        """A fresh head trained on every task's rows at once, evaluated on every task."""
        head = LinearHead(self.embedder.dim, self.seed)
        X = np.concatenate([x for x, _ in self.rows])
        labels = [c for _, ls in self.rows for c in ls]
        seconds = head.fit(X, labels)
        return {"train_seconds": round(seconds, 3), "rows": len(labels), **self._evaluate(head, len(self.rows))}
