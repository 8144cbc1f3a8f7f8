"""Metrics against hand-computed cases, and evaluate() end to end with a real memory."""
import numpy as np
import pytest

from knnclip_core.evaluation import Confusion, PanopticQuality, Sample, evaluate
from knnclip_core.segment import FlatMemory, Segmenter, SegmentParams


def test_confusion_hand_computed():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 9, 9]])  # 9 = ignored (outside classes)
    pred = np.array([[0, 0, 0, 1], [0, -1, 1, 1], [1, 1, 0, 0]])
    c = Confusion(3)
    c.add(pred, gt)
    s = c.scores(["a", "b", "c"])
    # class a: gt 4 px, tp 3, predicted a elsewhere 1 -> IoU 3 / (4 + 4 - 3) = 0.6
    # class b: gt 4 px, tp 3, predicted b elsewhere 2 (on c) -> IoU 3 / (4 + 5 - 3) = 0.5
    # class c: gt 2 px, tp 0 -> IoU 0
    assert s["per_class_iou"] == pytest.approx({"a": 0.6, "b": 0.5, "c": 0.0})
    assert s["miou"] == pytest.approx((0.6 + 0.5 + 0.0) / 3)
    assert s["pixel_accuracy"] == pytest.approx(6 / 10)


def test_class_absent_everywhere_is_not_averaged():
    c = Confusion(3)
    c.add(np.zeros((2, 2), int), np.zeros((2, 2), int))
    assert c.scores(["a", "b", "c"])["per_class_iou"] == {"a": 1.0}


def test_panoptic_quality_hand_computed():
    h, w = 4, 8
    gt_a = np.zeros((h, w), bool); gt_a[:, :4] = True
    gt_b = np.zeros((h, w), bool); gt_b[:, 4:6] = True
    pred_a = np.zeros((h, w), bool); pred_a[:, :3] = True       # IoU 12/16 = 0.75 -> TP
    pred_b = np.zeros((h, w), bool); pred_b[:1, 4:6] = True     # IoU 2/8 -> FP, and gt_b FN
    void = np.zeros((h, w), bool); void[:, 6:] = True
    pred_void = void.copy()                                     # all over void -> not an FP
    pq = PanopticQuality(2)
    pq.add([(0, pred_a), (1, pred_b), (1, pred_void)], [(0, gt_a), (1, gt_b)], void)
    s = pq.scores(["a", "b"])
    assert s["per_class_pq"]["a"] == pytest.approx(0.75)        # 0.75 / (1 + 0 + 0)
    assert s["per_class_pq"]["b"] == pytest.approx(0.0)
    assert s["pq"] == pytest.approx(0.375)
    assert s["rq"] == pytest.approx(0.5)


def test_evaluate_with_gt_masks_and_proposals():
    from knnclip_core.embedders import get_embedder

    emb = get_embedder("classic", device="cpu")
    rng = np.random.default_rng(0)
    colours = {"red": [200, 30, 30], "green": [30, 200, 30], "blue": [30, 30, 200]}
    samples, xb, labels = [], [], []
    for i in range(4):
        img = np.zeros((40, 40, 3), np.uint8)
        names = list(colours)
        rng.shuffle(names)
        masks = []
        for j, name in enumerate(names):
            m = np.zeros((40, 40), bool)
            m[:, j * 13: (j + 1) * 13 + (1 if j == 2 else 0)] = True
            img[m] = colours[name]
            masks.append(m)
        img = np.clip(img.astype(int) + rng.integers(0, 10, img.shape), 0, 255).astype(np.uint8)
        samples.append(Sample(image=img, segments=list(zip(names, masks))))
        xb.append(emb.embed_masks(img, masks))
        labels += names
    vocab = sorted(colours)
    mem = FlatMemory(np.concatenate(xb), [vocab.index(n) for n in labels], vocab)
    seg = Segmenter(emb, mem, SegmentParams(k=3, proposals="grid", proposal_options={"rows": 1, "cols": 3}))
    report = evaluate(seg, samples, ["Red", "green", "blue", "yellow"], masks_from="gt", panoptic=True)
    assert report["segment_accuracy"] == 1.0 and report["segments"] == 12
    assert report["miou"] == pytest.approx(1.0) and report["pixel_accuracy"] == pytest.approx(1.0)
    assert set(report["per_class_iou"]) == {"Red", "green", "blue"}
    assert report["pq"] == pytest.approx(1.0)
    report = evaluate(seg, samples, ["red", "green", "blue"], masks_from="proposals")
    assert report["segment_accuracy"] is None
    assert 0.5 < report["pixel_accuracy"] <= 1.0
