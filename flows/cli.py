"""`knnclip run` (the pipeline, locally, no server to start by hand) and `knnclip schedule`."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

from knnclip_core.cli.common import add_json_flag, emit, workspace_from_args
from knnclip_core.cli.ingest_cmd import add_reader_flags, reader_kwargs
from knnclip_core.net import free_port
from knnclip_core.redact import redact_text, redact_url

from flows.prefect_env import configure


def add_pipeline_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", help="backbone name (`knnclip backbones`)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-vectors", type=int)
    budget.add_argument("--budget-mb", type=float)
    p.add_argument("--strategy", help="balanced | diversity | random")
    p.add_argument("--dedup-threshold", type=float)
    p.add_argument("--alias", default="staging", help="alias the new release gets (default staging)")
    p.add_argument("--promote", metavar="ALIAS", help="also promote the release to ALIAS (quality gate applies)")
    p.add_argument("--index", help="FAISS factory string overriding the automatic choice")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int)
    p.add_argument("--min-area", type=int)
    p.add_argument("--task-runner", choices=["default", "dask"], default="default",
                   help="where embedding runs: in process, or on a Dask cluster")
    p.add_argument("--dask-address", help="scheduler address of an existing Dask cluster (default: a local one)")
    p.add_argument("--embed-shards", type=int, default=None, help="parallel embedding tasks (default 2 with dask)")


def cmd_run(args: argparse.Namespace) -> int:
    settings, ws = workspace_from_args(args)
    configure(ws)  # before prefect is imported (flows.tasks imports it): logging reads it once
    from flows.tasks import export_secrets

    export_secrets(settings)  # read by the tasks from the environment, never passed as parameters
    from flows.pipeline import curation_pipeline

    use_dask = args.task_runner == "dask"
    where = redact_url(os.environ.get("PREFECT_API_URL")) or "a temporary local Prefect server (it takes ~10 s to start)"
    print(f"run: starting the pipeline on {where}{' with a Dask cluster' if use_dask or args.dask_address else ''}",
          file=sys.stderr, flush=True)
    if os.environ.get("PREFECT_API_URL"):
        _check_prefect_api(os.environ["PREFECT_API_URL"])
    result = curation_pipeline(
        path=args.path, format=args.format, backbone=args.backbone, budget_vectors=args.budget_vectors,
        budget_mb=args.budget_mb, strategy=args.strategy, dedup_threshold=args.dedup_threshold, alias=args.alias,
        promote_to=args.promote, index=args.index, device=args.device, batch_size=args.batch_size,
        embed_shards=args.embed_shards or (2 if use_dask else 1), use_dask=use_dask, dask_address=args.dask_address,
        reader={k: v for k, v in reader_kwargs(args).items() if v not in (None, [])}, min_area=args.min_area)
    # No settings parameter: the tasks read the same settings from this process's environment
    # (--config and --home are in it), so a run's parameters in Prefect are what it was asked.
    rel = result["release"]
    human = ["ingested: " + "; ".join(f"{r['images']} images, {r['segments']} segments ({r['new_segments']} new), "
                                       f"{r['quarantined']} quarantined" for r in result["ingest"]),
             f"embedded: {result['embed'].get('embedded', 0)} new vectors ({result['embed'].get('backbone')})",
             f"curated:  {(result['curate'].get('counts') or {}).get('kept', '?')} vectors kept",
             f"release:  {rel['uri']} ({rel['vectors']} vectors, {rel['classes']} classes)"
             + (f", alias {rel['alias']}" if rel.get("alias") else "")]
    if result.get("promoted"):
        human.append(f"promoted: version {result['promoted']['version']} -> {result['promoted']['alias']}")
    emit(args, result, "\n".join(human))
    return 0


def _check_prefect_api(url: str, timeout: float = 10.0) -> None:
    """Raise KnnclipError (one sentence, the URL without its password) when the Prefect API at
    `url` does not answer its health check."""
    from knnclip_core.errors import KnnclipError

    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            failure = client.api_healthcheck()
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is the same sentence
        failure = exc
    if failure is not None:
        raise KnnclipError(redact_text(f"the Prefect API at {url} cannot be reached ({type(failure).__name__}: "
                                       f"{str(failure)[:200]}); check PREFECT_API_URL, or unset it for a "
                                       "temporary local server"))


def start_local_server(timeout: float = 90.0) -> tuple[subprocess.Popen, str]:
    """Start `prefect server start` on loopback and wait until it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            break
    proc.terminate()
    raise RuntimeError(f"the Prefect server did not start on port {port}")


def cmd_schedule(args: argparse.Namespace) -> int:
    settings, ws = workspace_from_args(args)
    configure(ws)  # before prefect is imported (flows.tasks imports it): logging reads it once
    from flows.tasks import export_secrets

    export_secrets(settings)  # read by the tasks from the environment, never passed as parameters
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        server, url = start_local_server()
        os.environ["PREFECT_API_URL"] = url
        print(f"started a local Prefect server at {url} (UI: {url[:-4]})", file=sys.stderr)
    from flows.pipeline import drop_folder_pipeline

    params = {"watch_dir": os.path.abspath(args.watch), "backbone": args.backbone, "alias": args.alias,
              "budget_vectors": args.budget_vectors, "budget_mb": args.budget_mb}  # settings: from the environment
    print(json.dumps({"deployment": "knnclip-drop-folder", "cron": args.cron, "watch": params["watch_dir"]}))
    print(f"schedule: serving deployment knnclip-drop-folder (cron {args.cron!r}) over {params['watch_dir']}; each run "
          f"prints its stage lines here and logs them to the Prefect UI ({os.environ['PREFECT_API_URL'].removesuffix('/api')})",
          file=sys.stderr, flush=True)
    try:
        drop_folder_pipeline.serve(name="knnclip-drop-folder", cron=args.cron, parameters=params)
    finally:
        if server is not None:
            server.terminate()
    return 0


def register(sub) -> None:
    p = sub.add_parser("run", help="run the whole curation pipeline on PATH (Prefect, local, offline)")
    add_reader_flags(p)
    add_pipeline_flags(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("schedule", help="serve the pipeline on a cron schedule over a drop folder")
    p.add_argument("--cron", required=True, help='cron expression, e.g. "0 2 * * *"')
    p.add_argument("--watch", required=True, help="drop folder: each dataset folder or COCO JSON in it is a batch")
    p.add_argument("--backbone")
    p.add_argument("--alias", default="staging")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-vectors", type=int)
    budget.add_argument("--budget-mb", type=float)
    p.set_defaults(func=cmd_schedule)
