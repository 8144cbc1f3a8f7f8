"""Figures tables of benchmarks/README.md, generated from the benchmarks' own JSON.

Each run of a benchmark saves its `--json` line under benchmarks/results/<machine>-<date>/
(`<name>.json`, with `machine.txt` beside it saying the card, driver, cores and versions).
This script renders every saved result into the part of benchmarks/README.md between the
`figures` markers, and their headline figures into README.md between the `key-figures`
markers, so no figure in either is typed by hand.

    python benchmarks/report.py           # rewrite the figures in benchmarks/README.md
    python benchmarks/report.py --check   # exit 1 when the README differs from the JSON
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
TOP_README = HERE.parent / "README.md"
START, END = "<!-- figures:start (benchmarks/report.py writes this part) -->", "<!-- figures:end -->"
KEY_START, KEY_END = "<!-- key-figures:start (benchmarks/report.py writes this part) -->", "<!-- key-figures:end -->"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(head: list[str], rows: list[list]) -> list[str]:
    return [_row(head), _row(["---"] * len(head)), *(_row(r) for r in rows)]


def _ms(seconds) -> str:
    return f"{1000 * seconds:.1f}"


def embed_rows(results: list[tuple[str, dict]]) -> list[str]:
    head = ["result", "images", "backbone", "workers", "bare img/s", "pipeline img/s", "seg/s",
            "forwards/img", "start-up s", "ratio", "vs plain loop", "job vs today's path"]
    rows = [[name, r["source"], r["backbone"], r["num_workers"], r["bare_images_per_s"], r["images_per_s"],
             r["segments_per_s"], r.get("forwards_per_image", "n/a"), r.get("pipeline_startup_s", "in timing"),
             f"**{r['ratio']}** ({', '.join(map(str, r['ratio_per_round']))})", r.get("ratio_vs_plain_loop"),
             r.get("speedup_vs_today", "")]
            for name, r in results]
    return _table(head, rows)


def _index_label(r: dict) -> str:
    """A latency result's index factory and its search parameters, e.g. `IVF1024,SQ8 {'nprobe': 2}`."""
    return " ".join(str(x) for x in (r["index"], r.get("search_params")) if x)


def latency_rows(results: list[tuple[str, dict]]) -> list[str]:
    head = ["result", "backbone", "memory", "index (chosen by)", "proposals ms", "forward ms", "retrieval ms",
            "base model ms", "fusion ms", "bare AMP forward ms", "forwards/img", "overhead ratio (target <= 0.5)"]
    rows = [[name, r["backbone"], f"{r['memory_vectors']} {r.get('memory_kind', 'uniform')}", f"{_index_label(r)} ({r.get('index_chosen_by', '?')})",
             _ms(r["proposals_s"]), _ms(r["forward_s"]), _ms(r["retrieval_s"]),
             _ms(r["base_model_s"]) if "base_model_s" in r else "in fusion", _ms(r["fusion_s"]),
             _ms(r["bare_encode_image_s"]), r.get("forwards_per_image", "n/a"), f"**{r['overhead_ratio']}**"]
            for name, r in results]
    return _table(head, rows)


def continual_rows(results: list[tuple[str, dict]]) -> list[str]:
    """Task x release mIoU per protocol (ours and the sequential head), then forgetting."""
    lines = []
    for name, r in results:
        tasks = r["tasks"]
        head = ["protocol", "task", *[f"after +{t}" for t in tasks], "forgetting (points)"]
        rows = []
        baselines = [(BASELINE_LABELS[n], r["baseline"][n], {}) for n in BASELINE_LABELS if n in r["baseline"]]
        for label, matrix, forget in (("kNN memory", r["matrix"], r.get("forgetting_per_task", {})), *baselines):
            for protocol in ("own", "union"):
                for t in tasks:
                    row = matrix[protocol]["miou"][t]
                    cells = ["" if v is None else f"{100 * v:.1f}" for v in row]
                    rows.append([f"{label}, {protocol}", t, *cells, forget.get(protocol, {}).get(t, "")])
        lines += [f"`{name}` ({r['backbone']}, mIoU in points, ground-truth masks):", "", *_table(head, rows), "",
                  f"- max forgetting, kNN memory: **{r['max_forgetting_own_vocab']}** (own vocabulary), "
                  f"**{r['max_forgetting_union_vocab']}** (union); sequential head: "
                  f"**{r['baseline_max_forgetting']}** (own), {r.get('baseline_max_forgetting_union_vocab')} (union)",
                  "- joint head (all tasks at once: the upper bound), own vocabulary mIoU: " + ", ".join(
                      f"{t} {100 * f['miou']:.1f}" for t, f in r["baseline"]["joint_head"]["own"].items()),
                  *(["- max forgetting per baseline (own vocabulary, points): " + ", ".join(
                      f"{BASELINE_LABELS.get(n, n)} {v}" for n, v in r["baseline_max_forgetting_per_baseline"].items())]
                    if "baseline_max_forgetting_per_baseline" in r else []),
                  "- adding a task: " + "; ".join(
                      f"+{rel['task']}: kNN {rel['add_task_seconds']} s (ingest+embed+curate+publish), index "
                      f"{rel['index_bytes']} B, head training {c['train_seconds']} s, {c['head_bytes']} B"
                      for rel, c in zip(r["releases"], r["baseline"]["costs"])),
                  f"- under a budget of {r['budget']['vectors']} rows: " + "; ".join(
                      f"{st}: final rows per task {b['releases'][-1]['rows_per_task']}, max forgetting "
                      f"{b['max_forgetting_own_vocab']}" for st, b in r["budget"]["strategies"].items()), ""]
    return lines


def active_loop_rows(results: list[tuple[str, dict]]) -> list[str]:
    """Per round, both arms: images and labels spent, mIoU, unknown rate."""
    lines = []
    for name, r in results:
        head = ["round", "active: images", "labels", "mIoU", "unknown rate", "random: images", "labels", "mIoU",
                "unknown rate"]
        rows = [[k, a["images_labelled"], a["labels_spent"], f"{100 * a['miou']:.1f}", f"{a['unknown_rate']:.3f}",
                 b["images_labelled"], b["labels_spent"], f"{100 * b['miou']:.1f}", f"{b['unknown_rate']:.3f}"]
                for k, (a, b) in enumerate(zip(r["active"], r["random"]))]
        lines += [f"`{name}` ({r['backbone']}, CamVid: memory of {r['train_images']} train images without "
                  f"{', '.join(r['dropped_classes'])}; pool of {r['pool_images']} held-out images, {r['per_round']} "
                  f"labelled per round per arm; mIoU in points on {r['eval_images']} val images, "
                  f"{r['masks']}; {r['seconds']} s):", "", *_table(head, rows), ""]
    return lines


BASELINE_LABELS = {"sequential_head": "sequential head", "replay_head": "head + replay exemplars",
                   "retrained_head": "head retrained on all rows", "nearest_class_mean": "nearest class mean"}


def open_set_rows(results: list[tuple[str, dict]]) -> list[str]:
    """Per confidence: AUROC and figures at the T chosen on the calibration split, on both
    splits; then the release calibration targets."""
    lines = []
    for name, r in results:
        head = ["confidence", "AUROC cal", "AUROC report", "T (chosen on cal)", "report known accuracy",
                "report left-out unknown", "report balanced", "cal balanced"]
        rows = [[k, c["auroc_calibration"], c["auroc_report"], c["threshold"], c["report"]["known_accuracy"],
                 c["report"]["unknown_rate_left_out"], f"**{c['report']['balanced']}**", c["calibration"]["balanced"]]
                for k, c in r["confidences"].items()]
        lines += [f"`{name}` ({r['backbone']}, memory without drive {r['held_out_drive']}: {r['memory_segments']} "
                  f"segments; calibration split {r['calibration_segments']}, report split {r['report_segments']} "
                  f"segments; k={r['k']}):", "", *_table(head, rows), "",
                  f"- best on the report split: `{r['winner_report_split']}`, on the calibration split: "
                  f"`{r['winner_calibration_split']}`; default confidence: `{r['default_confidence']}`", ""]
        head = ["release target", "T", "held-out known accuracy", "cal segment accuracy", "report segment accuracy",
                "report left-out unknown", "report balanced"]
        rows = [[t, e["threshold"], e["held_out"]["known_accuracy"], e["calibration"]["segment_accuracy_all_classes"],
                 e["report"]["segment_accuracy_all_classes"], e["report"]["unknown_rate_left_out"],
                 e["report"]["balanced"]] for t, e in r["release_calibration"].items()]
        lines += [f"Release calibration with `{r['product_confidence']}` (T on a held-out 15 % of the memory's own "
                  f"images; segment accuracy with every class in the memory, no threshold on the report split: "
                  f"{r['segment_accuracy_no_threshold_report']}):", "", *_table(head, rows), "",
                  f"- chosen on the calibration split (most left-out caught for at most {r['release_accuracy_cost']} "
                  f"segment accuracy lost): `{r['release_target_chosen_on_calibration']}`; configured: "
                  f"`{r['release_target_configured']}`", ""]
    return lines


def other_rows(results: list[tuple[str, dict]]) -> list[str]:
    out = []
    for name, r in results:
        flat = {k: v for k, v in r.items() if isinstance(v, (int, float, str, bool)) and len(str(v)) < 60}
        out.append(f"- `{name}`: " + ", ".join(f"{k} {v}" for k, v in sorted(flat.items())))
    return out


def stream_rows(results: list[tuple[str, dict]]) -> list[str]:
    """One row per size of a streamed dedup run (dedup_scale.py --stream)."""
    head = ["result", "vectors", "dim", "seconds", "spill s", "search s", "pairs (planted)", "peak RSS MB", "load"]
    rows = [[name, f"{s['n']:,}", s["d"], s["seconds"], s["spill_seconds"], s["search_seconds"],
             f"{s['pairs']:,} ({s['planted_duplicates']:,})", s["peak_rss_mb"], s["load_average"][0]]
            for name, r in results for s in r["streamed"]]
    in_memory = [(n, r) for n, r in results if r.get("seconds_1m") is not None or r.get("agreement") is not None]
    return _table(head, rows) + ([""] + other_rows(in_memory) if in_memory else [])


def proposal_rows(results: list[tuple[str, dict]]) -> list[str]:
    """Dataset x generator: mIoU with proposals, with GT masks, achievable, s/img (PQ on COCO)."""
    head = ["result", "dataset", "generator", "mIoU", "mIoU GT masks", "achievable", "proposals/img", "s/img",
            "PQ (GT masks)"]
    rows = [[name, ds, g, gr["miou"], d["miou_gt"], gr["achievable_miou"], gr["proposals_per_image"],
             gr["seconds_per_image"], f"{gr['pq']} ({d['pq_gt']})" if "pq" in gr else ""]
            for name, r in results for ds, d in r["datasets"].items() for g, gr in d["generators"].items()]
    return _table(head, rows)


def unseen_rows(results: list[tuple[str, dict]]) -> list[str]:
    """Per mode (GT masks, proposals) of an unseen_drive.py run: mIoU, accuracies, unknown, time."""
    head = ["result", "held-out drive", "release", "T", "masks", "mIoU", "segment accuracy", "pixel accuracy",
            "unknown", "seconds", "gap closed"]
    rows = [[name, f"{r['held_out_drive']} ({r['query_frames']} frames)",
             f"{r['release_vectors']:,} vectors of {r['memory_frames']} frames", f"{r['threshold']['value']} ({r['threshold']['source']})",
             mode, m["miou"], _f(m["segment_accuracy"], 4), m["pixel_accuracy"], m["unknown_segments"], m["seconds"],
             "" if mode == "gt" else f"{r['gap_closed']} (from {r['baseline_miou']})"]
            for name, r in results for mode, m in r["modes"].items()]
    return _table(head, rows)


KINDS = (("proposals", "tuned_on", proposal_rows), ("unseen drive through the CLI", "gap_closed", unseen_rows),
         ("embed_throughput", "bare_images_per_s", embed_rows),
         ("worker_latency", "overhead_ratio", latency_rows), ("continual", "max_forgetting_own_vocab", continual_rows),
         ("active_loop", "labels_active", active_loop_rows), ("open_set", "release_calibration", open_set_rows),
         ("dedup streamed from LanceDB", "streamed", stream_rows))


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def key_line(name: str, r: dict) -> str | None:
    """One sentence of a result's headline figures, for the top-level README."""
    if "gap_closed" in r:
        gt, props = r["modes"]["gt"], r["modes"]["proposals"]
        return (f"unseen CamVid drive {r['held_out_drive']} through the CLI (release of {r['release_vectors']:,} "
                f"vectors, T {r['threshold']['value']} {r['threshold']['source']}): GT masks segment accuracy "
                f"{_f(gt['segment_accuracy'])} (target 0.85), mIoU {_f(gt['miou'])}; default proposals mIoU "
                f"{_f(props['miou'])}, {_f(r['gap_closed'], 2)} of the gap from {r['baseline_miou']} closed (target 0.5)")
    if "speedup_vs_today" in r:  # a host-feature embedder (classic): against its own features and today's path
        return (f"embedding, {r['backbone']} on {r['device']}, {r['source']}, {r['num_workers']} workers: pipeline "
                f"{r['job_segments_per_s']:.0f} seg/s for the whole job against {r['today_segments_per_s']:.0f} by "
                f"today's path (x{r['speedup_vs_today']}, target 4), same vectors (max abs difference "
                f"{r['max_abs_diff_vs_today']:.0e}); features alone {r['bare_images_per_s']:.1f} img/s on one core")
    if "bare_images_per_s" in r:
        return (f"embedding, {r['backbone']} on {r['device']}, {r['source']}, {r['num_workers']} workers: pipeline "
                f"{r['images_per_s']:.0f} img/s against {r['bare_images_per_s']:.0f} for a bare forward "
                f"(ratio {r['ratio']}, target 0.9), {r.get('forwards_per_image', 'n/a')} forward per image")
    if "overhead_ratio" in r:
        return (f"worker, {r['backbone']} on {r['device']}, {r['memory_vectors']} {r.get('memory_kind', 'uniform')} "
                f"vectors ({_index_label(r)}): proposals "
                f"{_ms(r['proposals_s'])} ms, forward {_ms(r['forward_s'])} ms, retrieval {_ms(r['retrieval_s'])} ms; "
                f"overhead ratio {r['overhead_ratio']} (target 0.5)")
    if "release_calibration" in r:
        c = r["confidences"]
        cal = r["release_calibration"].get(r["release_target_configured"], {})
        return (f"open set, {r['backbone']} on CamVid, drive {r['held_out_drive']} kept out of the memory (T chosen "
                f"on its first half, reported on its second): AUROC " + ", ".join(
                    f"`{k}` {_f(v['auroc_report'])}" for k, v in c.items())
                + f"; balanced score `{r['default_confidence']}` {_f(c[r['default_confidence']]['report']['balanced'])}"
                f" (the default); release-calibrated T ({r['release_target_configured']}) {cal.get('threshold')}: "
                f"segment accuracy {_f(cal.get('report', {}).get('segment_accuracy_all_classes'))} on the unseen "
                f"half (no threshold {_f(r['segment_accuracy_no_threshold_report'])})")
    if "auroc_similarity" in r:
        return (f"open set, {r['backbone']} on CamVid (one class left out at a time): AUROC of the confidence "
                f"{_f(r['auroc_similarity'])} for `similarity`, {_f(r['auroc_vote_share'])} for `vote_share`; at "
                f"T = {r['threshold']}: known-class accuracy {_f(r['known_accuracy'])}, left-out segments marked "
                f"unknown {_f(r['unknown_rate_left_out'])}")
    if "max_forgetting_own_vocab" in r and "matrix" in r:
        line = (f"continual, {r['backbone']}, CamVid -> COCO -> ADE20K releases: largest mIoU drop of an earlier "
                f"task {r['max_forgetting_own_vocab']} points with its own vocabulary, "
                f"{r['max_forgetting_union_vocab']} with the union; a sequentially fine-tuned head "
                f"{r['baseline_max_forgetting']}")
        if "final_own_miou" in r:
            final = r["final_own_miou"]
            line += ("; final CamVid mIoU: kNN memory " + f"{100 * final['knn_memory']['camvid']:.1f}, " + ", ".join(
                f"{BASELINE_LABELS[n]} {100 * final[n]['camvid']:.1f}" for n in BASELINE_LABELS if n in final)
                + f", joint upper bound {100 * r['joint_upper_bound_own_miou']['camvid']:.1f}"
                + (f" (--limit {r['limit']})" if r.get("limit") else ""))
        return line
    if "labels_active" in r:
        return (f"labelling loop, {r['backbone']} on CamVid ({r['rounds']} rounds of {r['per_round']} images, memory "
                f"without {', '.join(r['dropped_classes'])}): mIoU {100 * r['active'][0]['miou']:.1f} -> "
                f"{100 * r['final_miou_active']:.1f} labelling the worker's doubtful segments ({r['labels_active']} "
                f"labels), -> {100 * r['final_miou_random']:.1f} labelling the same number of images at random "
                f"({r['labels_random']} labels)")
    if "scenarios" in r and "lost_or_corrupted" in r:
        per = ", ".join(f"{n} {v['cases']}" for n, v in sorted(r["scenarios"].items()))
        tb = f", {r['tracebacks']} tracebacks" if "tracebacks" in r else ""  # older reports did not count them
        tb += f", {r['leaks']} leaked credentials" if "leaks" in r else ""
        return (f"faults: {r['cases']} cases ({per}), {r['lost_or_corrupted']} lost or corrupted{tb}")
    if "cross_sequence" in r:
        drives = ", ".join(f"{d} {_f(v['accuracy'], 2)}" for d, v in sorted(r["cross_sequence"].items()))
        return (f"classic accuracy, {r['backbone']}: CamVid val segment accuracy {_f(r['accuracy'])} (k=10, memory "
                f"from the same drive); each drive left out of the memory: {drives}")
    return None


def result_runs(results_dir: Path):
    """(folder, machine.txt lines) of each results folder, sorted by name."""
    for run in sorted(p for p in results_dir.iterdir() if p.is_dir()) if results_dir.is_dir() else []:
        yield run, (run / "machine.txt").read_text().strip().splitlines() if (run / "machine.txt").is_file() else []


def render_key_figures(results_dir: Path = RESULTS) -> str:
    """Bullets of headline figures per results folder (machine first), for README.md."""
    lines = []
    for run, machine in result_runs(results_dir):
        lines.append(f"- `{run.name}` ({'; '.join(machine[:3]) or 'machine not recorded'}):")
        for p in sorted(run.glob("*.json")):
            if "_shortjob" in p.stem or "_inproc" in p.stem:
                continue  # diagnostic runs: in benchmarks/README.md only
            line = key_line(p.stem, json.loads(p.read_text()))
            if line:
                lines.append(f"  - {line}")
    return "\n".join(lines) + "\n"


def _between(text: str, start: str, end: str, body: str, where: Path) -> str:
    assert start in text and end in text, f"{where} lacks the markers {start!r} ... {end!r}"
    return text[:text.index(start) + len(start)] + "\n" + body + text[text.index(end):]


def render(results_dir: Path = RESULTS) -> str:
    """Markdown of every results folder: machine, then one table per benchmark."""
    lines: list[str] = []
    for run, machine in result_runs(results_dir):
        lines += [f"### {run.name}", "", "Machine: " + ("; ".join(machine) or "not recorded"), ""]
        results = [(p.stem, json.loads(p.read_text())) for p in sorted(run.glob("*.json"))]
        left = list(results)
        for title, key, rows in KINDS:
            mine = [(n, r) for n, r in results if key in r]
            if mine:
                lines += ([f"`{title}`:", ""] if title not in ("continual", "active_loop", "open_set") else []) + [*rows(mine), ""]
                left = [x for x in left if x not in mine]
        if left:
            lines += other_rows(left) + [""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the READMEs are not what the JSON gives")
    args = ap.parse_args(argv)
    stale = []
    for path, start, end, body in ((README, START, END, render()),
                                   (TOP_README, KEY_START, KEY_END, render_key_figures())):
        text = path.read_text()
        new = _between(text, start, end, body, path)
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"{', '.join(map(str, stale))} out of date: run python benchmarks/report.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
