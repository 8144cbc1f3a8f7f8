"""Fault scenario: config and environment mistakes, generated from the settings themselves.

For every leaf setting (walked from knnclip_core.config.Settings): values of the wrong type,
out of its bounds (each field's pydantic constraints: below ge/gt, above le, inf, nan), and
a misspelt key, each given both in a --config file and as a KNNCLIP_* variable; plus files
that are not plain YAML (tags, not UTF-8, a list or a scalar at the top level, a key given
twice, a folder, a missing file), presets that do not exist, and KNNCLIP_HOME empty, a file
or under a file. Each case runs the real CLI (`knnclip info`, in process; a sample of them
in a child process for the real exit status). A case passes when the command exits 2 with
one line naming the file or variable and the key, and no workspace appears anywhere (the
current folder stays empty).

    run(workdir, cases=600, seed=0) -> {"cases", "lost_or_corrupted", "tracebacks", "leaks",
                                        "accepted", "unclear", "failures": [first few]}
"""
from __future__ import annotations

import contextlib
import io
import os
import random
import sys
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHILD_SAMPLE = 12  # cases also run in a child process (real exit status, real stderr)
FILE_CASES = {  # name -> (bytes, what the sentence must say)
    "tag": (b"curate:\n  seed: !!python/object/apply:os.system [true]\n", "tags are not allowed"),
    "tag_top": (b"!!python/name:os.system\n", "tags are not allowed"),
    "latin1": (b"curate:\n  seed: 1 # caf\xe9\n", "not UTF-8"),
    "utf16": ("curate:\n  seed: 1\n".encode("utf-16"), "not UTF-8"),
    "list": (b"- curate\n- embed\n", "top level"),
    "scalar": (b"just text\n", "top level"),
    "duplicate": (b"curate:\n  seed: 1\n  seed: 2\n", "given twice"),
    "duplicate_section": (b"curate: {seed: 1}\ncurate: {seed: 2}\n", "given twice"),
    "syntax": (b"curate: [unclosed\n", "line"),
    "tabs": (b"curate:\n\tseed: 1\n", "line"),
    "preset": (b"preset: nope\n", "unknown preset"),
    "preset_list": (b"preset: [paper]\n", "preset"),
    "preset_path": (b"preset: ../../etc/passwd\n", "unknown preset"),
}


def _leaves(model, prefix=()) -> Iterator[tuple[tuple[str, ...], object]]:
    """(key path, FieldInfo) of each leaf setting of a pydantic model."""
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and getattr(ann, "model_fields", None):
            yield from _leaves(ann, (*prefix, name))
        else:
            yield (*prefix, name), field


def _bounds(field) -> dict:
    out = {}
    for m in field.metadata:
        for k in ("ge", "gt", "le", "lt"):
            if getattr(m, k, None) is not None:
                out[k] = getattr(m, k)
    return out


def _kind(field) -> str:
    text = str(field.annotation)
    for k in ("bool", "int", "float", "dict", "Path", "Literal", "str"):
        if k in text:
            return k
    return "str"


def bad_values(field) -> list[tuple[str, object, str]]:
    """(label, YAML value, env text) of values `field` must refuse."""
    kind, b = _kind(field), _bounds(field)
    out: list = []
    if kind in ("int", "float"):
        out += [("text", "abc", "abc"), ("list", [1, 2], "[1, 2]")]
        if kind == "int":
            out += [("fraction", 1.5, "1.5")]
        if kind == "float" or "ge" in b or "gt" in b:
            out += [("inf", float("inf"), "inf"), ("nan", float("nan"), "nan")] if kind == "float" else []
        if "ge" in b:
            out.append(("below", b["ge"] - 1, str(b["ge"] - 1)))
        if "gt" in b:
            out.append(("at_gt", b["gt"], str(b["gt"])))
        if "le" in b:
            out.append(("above", b["le"] + 1, str(b["le"] + 1)))
    elif kind == "bool":
        out += [("text", "maybe", "maybe"), ("list", [True], "[true]")]
    elif kind == "dict":
        out += [("list", [1], "[1]"), ("text", "x", "x")]
    elif kind == "Literal":
        out += [("choice", "no-such-choice", "no-such-choice"), ("list", ["a"], '["a"]')]
    else:  # str / Path / Optional[str]
        out += [("list", ["a", "b"], None), ("mapping", {"a": 1}, None)]
    return out


def _typo(name: str, rng: random.Random) -> str:
    i = rng.randrange(len(name))
    return name[:i] + name[i + 1:] if len(name) > 3 else name + "x"


def _yaml(path: tuple[str, ...], value) -> bytes:
    import yaml

    node: object = value
    for part in reversed(path):
        node = {part: node}
    return yaml.safe_dump(node, allow_unicode=True).encode()


def plan(workdir: Path, cases: int, seed: int) -> list[dict]:
    """The cases: {'argv', 'env', 'needles', 'label'}; files written under workdir/cfg."""
    from knnclip_core.config import Settings

    rng = random.Random(seed)
    cfg = workdir / "cfg"
    cfg.mkdir(parents=True, exist_ok=True)
    out = []
    secret = {"worker_token", "catalog_url", "lock_url", "memory_uri"}
    for path, field in _leaves(Settings):
        key = ".".join(path)
        for label, value, env_text in bad_values(field):
            if path[-1] in ("home", "preset") or path[-1] in secret and label in ("list", "mapping"):
                if path[-1] not in secret:
                    continue
            f = cfg / f"{key}-{label}.yaml"
            f.write_bytes(_yaml(path, value))
            out.append({"label": f"file {key} {label}", "argv": ["--config", str(f), "info"], "env": {},
                        "needles": [str(f), key]})
            if env_text is not None and len(path) > 1:
                var = "KNNCLIP_" + "__".join(path).upper()
                out.append({"label": f"env {var} {label}", "argv": ["info"], "env": {var: env_text},
                            "needles": [var, key]})
        typo = (*path[:-1], _typo(path[-1], rng))
        f = cfg / f"{key}-typo.yaml"
        f.write_bytes(_yaml(typo, 1))
        out.append({"label": f"file {key} typo", "argv": ["--config", str(f), "info"], "env": {},
                    "needles": [str(f), ".".join(typo), "unknown key"]})
        if len(path) > 1:
            var = "KNNCLIP_" + "__".join(typo).upper()
            out.append({"label": f"env {var} typo", "argv": ["info"], "env": {var: "1"},
                        "needles": [var, "unknown key"]})
    for name, (body, needle) in FILE_CASES.items():
        f = cfg / f"whole-{name}.yaml"
        f.write_bytes(body)
        out.append({"label": f"file {name}", "argv": ["--config", str(f), "info"], "env": {}, "needles": [str(f), needle]})
    (cfg / "a-folder.yaml").mkdir(exist_ok=True)
    afile = cfg / "a-file"
    afile.write_text("not a folder")
    out += [
        {"label": "config folder", "argv": ["--config", str(cfg / "a-folder.yaml"), "info"], "env": {},
         "needles": ["a-folder.yaml", "folder"]},
        {"label": "config missing", "argv": ["--config", str(cfg / "missing.yaml"), "info"], "env": {},
         "needles": ["missing.yaml", "does not exist"]},
        {"label": "env config missing", "argv": ["info"], "env": {"KNNCLIP_CONFIG": str(cfg / "gone.yaml")},
         "needles": ["gone.yaml", "KNNCLIP_CONFIG"]},
        {"label": "preset env", "argv": ["info"], "env": {"KNNCLIP_PRESET": "nope"}, "needles": ["KNNCLIP_PRESET", "nope"]},
        {"label": "preset traversal", "argv": ["info"], "env": {"KNNCLIP_PRESET": "../default"},
         "needles": ["KNNCLIP_PRESET", "unknown preset"]},
        {"label": "home empty", "argv": ["info"], "env": {"KNNCLIP_HOME": ""}, "needles": ["KNNCLIP_HOME", "empty"]},
        {"label": "home spaces", "argv": ["info"], "env": {"KNNCLIP_HOME": "   "}, "needles": ["KNNCLIP_HOME", "empty"]},
        {"label": "home file", "argv": ["info"], "env": {"KNNCLIP_HOME": str(afile)}, "needles": ["KNNCLIP_HOME", "folder"]},
        {"label": "home under a file", "argv": ["--home", str(afile / "ws"), "info"], "env": {},
         "needles": ["workspace folder", "KNNCLIP_HOME"]},
        {"label": "section not JSON", "argv": ["info"], "env": {"KNNCLIP_WORKER": "abc"}, "needles": ["KNNCLIP_WORKER"]},
        {"label": "token blank", "argv": ["info"], "env": {"KNNCLIP_WORKER_TOKEN": " "}, "needles": ["KNNCLIP_WORKER_TOKEN"]},
        {"label": "token non-ascii", "argv": ["info"], "env": {"KNNCLIP_WORKER_TOKEN": "t\u00f6k"},
         "needles": ["KNNCLIP_WORKER_TOKEN"]},
        {"label": "lock url", "argv": ["info"], "env": {"KNNCLIP_LOCK_URL": "sqlite:///x.db"}, "needles": ["KNNCLIP_LOCK_URL"]},
        {"label": "sample-data classes", "argv": ["sample-data", str(workdir / "sd"), "--classes", "300"], "env": {},
         "needles": ["--classes"]},
    ]
    rng.shuffle(out)
    return out[:cases]


@contextlib.contextmanager
def _environment(env: dict) -> Iterator[None]:
    saved = dict(os.environ)
    for k in [k for k in os.environ if k.startswith("KNNCLIP_")]:
        del os.environ[k]
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_in_process(case: dict, home: Path) -> tuple[int, str]:
    """(exit status, stderr) of `knnclip ARGV` run in this process; a traceback is status -1."""
    import traceback

    from knnclip_core.cli.main import main

    err = io.StringIO()
    env = {"KNNCLIP_HOME": str(home), **case["env"]}
    with _environment(env), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(list(case["argv"]))
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # noqa: BLE001 - counted as a traceback
            err.write(traceback.format_exc())
            rc = -1
    return rc, err.getvalue()


def run_child(case: dict, home: Path, cwd: Path) -> tuple[int, str]:
    import subprocess

    from benchmarks.fault_scenarios import common

    env = common.child_env(home, **case["env"])
    res = subprocess.run([sys.executable, "-c", "import sys\n" + common.MAIN, *case["argv"]], cwd=str(cwd), env=env,
                         capture_output=True, text=True, timeout=120)
    return res.returncode, res.stderr


def judge(rc: int, err: str, case: dict) -> str:
    """'' when the case passed, else why not: traceback | accepted | unclear."""
    if "Traceback" in err or rc == -1:
        return "traceback"
    if rc == 0:
        return "accepted"
    lines = err.strip().splitlines()
    if rc != 2 or len(lines) != 1 or not all(n.lower() in err.lower() for n in case["needles"]):
        return "unclear"
    return ""


def run(workdir: Path, cases: int = 600, seed: int = 0) -> dict:
    """Run the config-mistake cases (see module docstring); returns the report."""
    workdir = Path(workdir)
    scratch = workdir / "cwd"  # the current folder: no workspace may appear in it
    scratch.mkdir(parents=True, exist_ok=True)
    home = workdir / "ws-never-made"
    todo = plan(workdir, cases, seed)
    counts = {"traceback": 0, "accepted": 0, "unclear": 0}
    failures, lost = [], 0
    here = os.getcwd()
    os.chdir(scratch)
    try:
        for i, case in enumerate(todo):
            rc, err = run_in_process(case, home) if i >= CHILD_SAMPLE else run_child(case, home, scratch)
            why = judge(rc, err, case)
            if why:
                counts[why] += 1
                if len(failures) < 10:
                    failures.append({"case": case["label"], "why": why, "rc": rc, "stderr": err[-400:]})
    finally:
        os.chdir(here)
    lost += len(list(scratch.iterdir())) + int(home.exists())
    return {"cases": len(todo), "lost_or_corrupted": lost, "tracebacks": counts["traceback"], "leaks": 0,
            "accepted": counts["accepted"], "unclear": counts["unclear"], "failures": failures}


if __name__ == "__main__":
    from benchmarks.fault_scenarios.common import run_standalone

    run_standalone(run, __doc__, default_cases=600)
