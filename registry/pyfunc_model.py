"""The MLflow pyfunc model of a release, as code (MLflow's models-from-code: this file is
copied into every version's model folder and executed on load; nothing is pickled).

    model = mlflow.pyfunc.load_model("models:/knnclip-memory@production")
    out = model.predict(pd.DataFrame({"image": [open("photo.jpg", "rb").read()]}))

Input: a DataFrame with one column `image` of encoded image bytes (PNG, JPEG, ...). Output: a
DataFrame, one row per image: `classes` and `segments` (JSON text: the release's class names
and per segment its label, score, area and whether retrieval was fused), `label_map_png`
(a 16-bit PNG of the class index per pixel, 65535 = unknown). The segmenter is the worker's
(knnclip_core: memory backbone rebuilt from the snapshot's provenance and verified, the
inference knobs recorded at publish in the model config); the caller needs only mlflow.
"""
from __future__ import annotations

import io
import json

import mlflow
from mlflow.pyfunc import PythonModel

UNKNOWN_PIXEL = 65535


class KnnclipSegmenter(PythonModel):
    """Segments images with the release's snapshot (artifact `snapshot`)."""

    def load_context(self, context) -> None:
        from knnclip_core.index import load_snapshot
        from knnclip_core.segment import SegmentParams
        from knnclip_core.segment.panoptic import PanopticParams
        from knnclip_core.segment.release import EmbedderCache, segmenter_for_snapshot

        config = dict(context.model_config or {})
        snapshot = load_snapshot(context.artifacts["snapshot"])  # verified against its manifest
        fields = {k: config[k] for k in ("k", "temperature", "confidence", "fusion_lambda", "confidence_threshold",
                                         "fallback_threshold", "proposals", "merge_rounds", "merge_scope",
                                         "merge_smoothing") if k in config}  # a release before a knob: its default
        if "proposal_options" in config:
            fields["proposal_options"] = dict(config["proposal_options"] or {})
        params = SegmentParams(**fields, panoptic=PanopticParams(**dict(config.get("panoptic") or {})))
        self.segmenter = segmenter_for_snapshot(snapshot, params, EmbedderCache(device="cpu"))

    def predict(self, context, model_input, params=None):
        import numpy as np
        import pandas as pd
        from PIL import Image

        rows = []
        for data in model_input["image"]:
            with Image.open(io.BytesIO(bytes(data))) as im:
                rgb = np.asarray(im.convert("RGB"))
            res = self.segmenter.segment(rgb)
            labels = np.where(res.label_map < 0, UNKNOWN_PIXEL, res.label_map).astype(np.uint16)
            png = io.BytesIO()
            Image.fromarray(labels).save(png, format="PNG")
            segments = [{"label": res.classes[s.label] if s.label >= 0 else None, "score": round(float(s.score), 6),
                         "area": int(s.mask.sum()), "fused": bool(s.fused)} for s in res.segments]
            rows.append({"classes": json.dumps(res.classes), "segments": json.dumps(segments),
                         "label_map_png": png.getvalue()})
        return pd.DataFrame(rows, columns=["classes", "segments", "label_map_png"])


mlflow.models.set_model(KnnclipSegmenter())
