"""Configuration layers: defaults < configs/default.yaml < --config FILE < KNNCLIP_* env."""
import json
import subprocess
import sys

import pytest

from knnclip_core.config import DEFAULT_CONFIG_FILE, WorkerConfig, load_settings, read_yaml


def test_layers_in_order(tmp_path, monkeypatch):
    monkeypatch.delenv("KNNCLIP_CONFIG", raising=False)
    base = load_settings()
    assert base.worker.k == WorkerConfig.model_fields["k"].default  # the one default (not in default.yaml)
    extra = tmp_path / "site.yaml"
    extra.write_text("worker:\n  k: 25\ningest:\n  min_area: 3\n")
    layered = load_settings(extra)
    assert (layered.worker.k, layered.ingest.min_area) == (25, 3)
    assert layered.worker.temperature == base.worker.temperature  # untouched fields keep the defaults
    monkeypatch.setenv("KNNCLIP_WORKER__K", "40")
    assert load_settings(extra).worker.k == 40  # the environment wins over the file


def test_missing_config_file_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("KNNCLIP_CONFIG", raising=False)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_settings(tmp_path / "nope.yaml")


def test_cli_config_and_home_flags(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("embed:\n  backbone: tiny-vit-random\n")
    out = subprocess.run([sys.executable, "-m", "knnclip_core.cli.main", "--config", str(cfg), "--home",
                          str(tmp_path / "ws"), "info", "--json"], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["home"] == str(tmp_path / "ws") and info["backbone"] == "tiny-vit-random"
    assert info["versions"]["torch"].startswith("2.14.1") and (tmp_path / "ws").is_dir()


KNOBS = ("k", "temperature", "confidence", "fusion_lambda", "confidence_threshold", "fallback_threshold", "proposals",
         "proposal_options", "merge_rounds", "merge_scope", "merge_smoothing", "panoptic")


def test_inference_knobs_have_one_default(monkeypatch):
    """k, temperature, lambda, T and proposals: one default (WorkerConfig's Field), which
    configs/default.yaml does not repeat and SegmentParams takes from it."""
    import dataclasses

    from knnclip_core.segment import SegmentParams

    monkeypatch.delenv("KNNCLIP_CONFIG", raising=False)
    assert not set(KNOBS) & set(read_yaml(DEFAULT_CONFIG_FILE)["worker"])
    params, defaults, settings = SegmentParams(), WorkerConfig(), load_settings()
    for knob in KNOBS:
        if knob != "panoptic":  # a dict in the settings, PanopticParams in SegmentParams (compared below)
            assert getattr(params, knob) == getattr(defaults, knob) == getattr(settings.worker, knob), knob
    assert SegmentParams() == dataclasses.replace(SegmentParams.from_settings(settings),
                                                  base_model=SegmentParams().base_model)
