"""Issue 21: config and environment mistakes are one sentence naming the file or variable,
the key and the reason, exit 2 (the real CLI, in process); settings carry their bounds."""
from __future__ import annotations

import pytest

from knnclip_core.cli.main import main
from knnclip_core.config import load_settings
from knnclip_core.errors import ConfigError

pytestmark = pytest.mark.reliability


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run `knnclip ARGS` in process with a clean KNNCLIP_* environment; (rc, stderr)."""
    import os

    for var in [v for v in os.environ if v.startswith("KNNCLIP_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("KNNCLIP_HOME", str(tmp_path / "ws"))

    def run(*argv, **env):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        try:
            rc = main(list(argv))
        finally:
            for k in env:
                monkeypatch.delenv(k, raising=False)
            # --config is exported by the CLI; popped directly, since monkeypatch would restore it
            os.environ.pop("KNNCLIP_CONFIG", None)
        err = capsys.readouterr().err
        return rc, err
    return run


def _one_sentence(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)


CONFIG_FILES = {  # file body -> what the sentence must name besides the file
    "tag": (b"curate:\n  budget_vectors: !!python/name:os.system\n", "line 2", "tags are not allowed"),
    "latin1": (b"curate:\n  seed: 1\n# caf\xe9\n", "line 3", "not UTF-8"),
    "list": (b"- a\n- b\n", "mapping", "list"),
    "inf": (b"curate:\n  budget_vectors: 1.0e+400\n", "curate.budget_vectors", "finite"),
    "1e400": (b"curate:\n  budget_vectors: 1e400\n", "curate.budget_vectors", "'1e400'"),
    "unknown": (b"curate:\n  budget_vector: 5\n", "curate.budget_vector", "did you mean curate.budget_vectors"),
    "unknown_top": (b"workr:\n  k: 3\n", "workr", "did you mean worker"),
    "nan": (b"worker:\n  max_upload_mb: .nan\n", "worker.max_upload_mb", "finite"),
    "lambda": (b"worker:\n  fusion_lambda: 1.5\n", "worker.fusion_lambda", "less than or equal to 1"),
    "temperature": (b"worker:\n  temperature: 0\n", "worker.temperature", "greater than 0"),
    "k": (b"worker:\n  k: 0\n", "worker.k", "greater than or equal to 1"),
    "duplicate": (b"worker:\n  k: 3\n  k: 4\n", "line 3", "given twice"),
    "confidence": (b"worker:\n  confidence: best\n", "worker.confidence", "vote_share"),
    "preset": (b"preset: nope\n", "preset", "unknown preset 'nope'"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_FILES))
def test_config_file_mistake_is_one_sentence(cli, tmp_path, case):
    body, *needles = CONFIG_FILES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(body)
    _one_sentence(*cli("--config", str(path), "info"), str(path), *needles)


ENVIRONMENT = {  # variable=value -> what the sentence must name besides the variable
    ("KNNCLIP_CURATE__BUDGET_VECTORS", "abc"): ("curate.budget_vectors", "valid integer"),
    ("KNNCLIP_WORKER__K", "0"): ("worker.k", "greater than or equal to 1"),
    ("KNNCLIP_CURATE__BUDGT", "3"): ("unknown key",),
    ("KNNCLIP_HOME", ""): ("home", "empty"),
    ("KNNCLIP_PRESET", "nope"): ("unknown preset 'nope'", "offline"),
    ("KNNCLIP_WORKER", "abc"): ("JSON",),
    ("KNNCLIP_WORKER_TOKEN", "  "): ("blank",),
    ("KNNCLIP_WORKER_TOKEN", "t\u00f6ken"): ("ASCII",),
}


@pytest.mark.parametrize("var,value", sorted(ENVIRONMENT))
def test_environment_mistake_is_one_sentence(cli, var, value):
    _one_sentence(*cli("info", **{var: value}), var, *ENVIRONMENT[(var, value)])


def test_home_naming_a_file_and_a_missing_config_file(cli, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    _one_sentence(*cli("info", KNNCLIP_HOME=str(afile)), "KNNCLIP_HOME", "not a folder")
    _one_sentence(*cli("--home", str(afile / "sub"), "info"), "workspace folder", "Not a directory")
    _one_sentence(*cli("--config", str(tmp_path / "missing.yaml"), "info"), "missing.yaml", "does not exist")


def test_secret_values_are_not_repeated(cli):
    rc, err = cli("info", KNNCLIP_WORKER_TOKEN=" s3cret-token ")
    _one_sentence(rc, err, "KNNCLIP_WORKER_TOKEN")
    assert "s3cret-token" not in err


def test_sample_data_class_count_is_one_sentence(cli, tmp_path):
    _one_sentence(*cli("sample-data", str(tmp_path / "d"), "--classes", "300"), "--classes", "1 to 255")


def test_bounds_are_pydantic_constraints(settings):
    """The bounds live on the fields (load_settings refuses them), not as asserts later."""
    for overrides in ({"worker": {"max_upload_mb": float("nan")}}, {"worker": {"fusion_lambda": 1.5}},
                      {"worker": {"temperature": 0}}, {"worker": {"k": 0}}, {"curate": {"budget_vectors": -1}},
                      {"worker": {"max_upload_mb": float("inf")}}, {"publish": {"recall_floor": 2}}):
        with pytest.raises(ConfigError):
            load_settings(**overrides)
    ok = load_settings(worker={"fusion_lambda": 1.0, "k": 1, "temperature": 0.01})
    assert ok.worker.fusion_lambda == 1.0 and ok.worker.k == 1
