"""Fault scenarios: every module in benchmarks/fault_scenarios/ with a `run(workdir, cases,
seed) -> dict` (at least 'cases' and 'lost_or_corrupted'), run one after the other, each in
its own fresh folder; per scenario and totals, in one run. A scenario also reports
'tracebacks' (commands that ended in one instead of a sentence); one that does not says None.

    python benchmarks/faults.py --json
    python benchmarks/faults.py --only kills,tampering --cases 5 --json

`--cases N` overrides each scenario's default size. The last stdout line with --json is one
JSON object: {'cases', 'lost_or_corrupted', 'tracebacks', 'scenarios': {name: {'cases',
'lost_or_corrupted', 'tracebacks', ...}}, 'seconds'}. Exit 1 when anything was lost or
corrupted, a traceback was seen or a scenario crashed. Only loopback addresses are used.
"""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SCENARIOS = REPO / "benchmarks" / "fault_scenarios"
HELPERS = {"common"}  # shared helpers, not scenarios


def scenario_names() -> list[str]:
    """Modules of fault_scenarios/ that define `run` (HELPERS and `_private` ones skipped)."""
    names = []
    for info in pkgutil.iter_modules([str(SCENARIOS)]):
        if info.name.startswith("_") or info.name in HELPERS:
            continue
        module = importlib.import_module(f"benchmarks.fault_scenarios.{info.name}")
        if callable(getattr(module, "run", None)):
            names.append(info.name)
    return sorted(names)


def run_scenarios(workdir: Path, names: Optional[list[str]] = None, cases: Optional[int] = None,
                  seed: int = 0) -> dict:
    """Run the scenarios `names` (default: all) in subfolders of `workdir`. Returns the report."""
    report, t0 = {"scenarios": {}}, time.perf_counter()
    for name in names or scenario_names():
        module = importlib.import_module(f"benchmarks.fault_scenarios.{name}")
        folder = workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        try:
            kwargs = {"cases": cases} if cases is not None else {}
            res = dict(module.run(folder, seed=seed, **kwargs))
        except Exception as exc:  # noqa: BLE001 - a crashed scenario is reported, not hidden
            res = {"cases": 0, "lost_or_corrupted": 1, "crashed": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc()[-3000:]}
        res.setdefault("tracebacks", None)  # a scenario that does not count them says so
        res["seconds"] = round(time.perf_counter() - t, 1)
        report["scenarios"][name] = res
        print(f"{name:<14} cases {res['cases']:>6}  lost_or_corrupted {res['lost_or_corrupted']:>4}  "
              f"tracebacks {res['tracebacks'] if res['tracebacks'] is not None else '-':>4}  {res['seconds']:>7.1f} s" + (f"  CRASHED {res['crashed']}" if "crashed" in res else ""),
              file=sys.stderr, flush=True)
    report["cases"] = sum(r["cases"] for r in report["scenarios"].values())
    report["lost_or_corrupted"] = sum(r["lost_or_corrupted"] for r in report["scenarios"].values())
    report.update({k: sum(r.get(k) or 0 for r in report["scenarios"].values()) for k in ("tracebacks", "leaks")})
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated scenario names (default: all)")
    ap.add_argument("--cases", type=int, help="cases per scenario (default: each scenario's own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", help="keep the scenarios' folders here (default: a temporary folder)")
    ap.add_argument("--json", action="store_true", help="print the report as one JSON line last")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else None
    if args.workdir:
        report = run_scenarios(Path(args.workdir), names, args.cases, args.seed)
    else:
        with tempfile.TemporaryDirectory(prefix="knnclip-faults-") as tmp:
            report = run_scenarios(Path(tmp), names, args.cases, args.seed)
    print(f"total          cases {report['cases']:>6}  lost_or_corrupted {report['lost_or_corrupted']:>4}  "
          f"tracebacks {report['tracebacks']:>4}  {report['seconds']:>7.1f} s", file=sys.stderr)
    if args.json:
        print(json.dumps(report, default=str))
    crashed = any("crashed" in r for r in report["scenarios"].values())
    return 1 if report["lost_or_corrupted"] or report["tracebacks"] or crashed else 0


if __name__ == "__main__":
    sys.exit(main())
