"""Start-up of each `knnclip` command beside a bare `python -c pass`, and which heavy
libraries each one imports before doing anything (`python -X importtime`).

    python benchmarks/startup.py [--repeats N] [--commands "curate --help" ...] [--json]

Each command runs `--help` (parsing and the imports its parser needs, nothing else), in
alternating rounds with the baseline so that a loaded machine slows both alike. `ratio` =
command seconds / `python -c pass` seconds (medians); `imports`: which of great_expectations,
mlflow, prefect, torch the command loaded.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("great_expectations", "mlflow", "prefect", "torch")
COMMANDS = ("info --help", "ingest --help", "embed --help", "curate --help", "publish --help", "releases --help",
            "run --help", "serve --help", "dashboard --help", "stack --help")


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep)}


def timed(argv: list[str]) -> float:
    """Wall seconds of one run of `argv` (its output discarded; raises when it fails)."""
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=REPO)
    return time.perf_counter() - t0


def heavy_imports(command: str) -> list[str]:
    """Which of HEAVY `knnclip COMMAND` imports (top-level packages in `-X importtime`)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "knnclip_core.cli.main", *command.split()],
                         capture_output=True, text=True, env=_env(), cwd=REPO)
    loaded = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    return [name for name in HEAVY if name in loaded]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds (median taken)")
    ap.add_argument("--commands", nargs="+", default=list(COMMANDS), help='e.g. "curate --help"')
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    args = ap.parse_args(argv)
    base, runs = [], {c: [] for c in args.commands}
    for _ in range(args.repeats):
        base.append(timed([sys.executable, "-c", "pass"]))
        for c in args.commands:
            runs[c].append(timed([sys.executable, "-m", "knnclip_core.cli.main", *c.split()]))
    baseline = statistics.median(base)
    result = {"baseline_python_pass_s": round(baseline, 4), "repeats": args.repeats, "commands": {}}
    for c, times in runs.items():
        s = statistics.median(times)
        result["commands"][c] = {"seconds": round(s, 4), "ratio": round(s / baseline, 2), "imports": heavy_imports(c)}
    width = max(map(len, runs))
    print(f"{'command':<{width}}  seconds  x python -c pass  heavy imports")
    print(f"{'python -c pass':<{width}}  {baseline:7.3f}  {1.0:16.1f}")
    for c, r in result["commands"].items():
        print(f"{c:<{width}}  {r['seconds']:7.3f}  {r['ratio']:16.1f}  {', '.join(r['imports']) or '-'}")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
