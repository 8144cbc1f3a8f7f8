"""`knnclip stack up|status|down|deploy|certs`: the local multi-machine topology (see README, "Beyond one machine")."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from knnclip_core.cli.common import add_json_flag, emit

from deploy.prefect_stack import POOL

DEFAULT_ROOT = ".knnclip-stack"


def _root(args) -> Path:
    return Path(args.root or os.environ.get("KNNCLIP_STACK_ROOT") or DEFAULT_ROOT).resolve()


def cmd_up(args: argparse.Namespace) -> int:
    from deploy.stack import ENV_FILE, StackOptions, up

    opts = StackOptions(serve_replicas=args.replicas, dask_workers=args.dask_workers, alias=args.alias,
                        poll_seconds=args.poll_seconds, prefect=not args.no_prefect, dask=args.dask_workers > 0)
    stack = up(_root(args), opts)
    rows = {n: {"kind": s.kind, "pid": s.pid, "url": s.url, "log": str(s.log)} for n, s in stack.services.items()}
    human = "\n".join(f"{n:16} {r['url']:42} pid {r['pid']}" for n, r in rows.items())
    human += f"\n\nall data under {stack.root}; logs in {stack.root / 'logs'}\nuse it: source {stack.root / ENV_FILE}"
    emit(args, {"root": str(stack.root), "services": rows, "env_file": str(stack.root / ENV_FILE)}, human)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from deploy.stack import status

    rows = status(_root(args))
    human = "\n".join(f"{n:16} {'up' if r['answering'] else ('running, not answering' if r['running'] else 'DOWN'):24} "
                      f"{r['url']}" for n, r in rows.items())
    emit(args, rows, human)
    return 0 if all(r["answering"] for r in rows.values()) else 1


def cmd_down(args: argparse.Namespace) -> int:
    from deploy.stack import down

    names = down(_root(args), purge=args.purge)
    emit(args, {"stopped": names, "purged": args.purge},
         f"stopped {len(names)} services" + (f"; deleted {_root(args)}" if args.purge else f"; data kept in {_root(args)}"))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from knnclip_core.errors import KnnclipError

    from deploy.prefect_stack import deploy_pipeline

    api_url = os.environ.get("PREFECT_API_URL")
    if not api_url:
        raise KnnclipError("PREFECT_API_URL is not set: `source <root>/stack.env` of a running stack first")
    params = {"path": os.path.abspath(args.path), "backbone": args.backbone, "alias": args.alias,
              "promote_to": args.promote, "embed_shards": args.embed_shards,
              "dask_address": args.dask_address or os.environ.get("KNNCLIP_DASK_ADDRESS")}
    params = {k: v for k, v in params.items() if v is not None}
    dep_id = deploy_pipeline(api_url, params, pool=args.pool or os.environ.get("KNNCLIP_WORK_POOL") or POOL,
                             cron=args.cron)
    emit(args, {"deployment_id": dep_id, "parameters": params, "cron": args.cron},
         f"deployment {dep_id} on the work pool; runs {args.cron or 'on demand'}: {params}")
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    from deploy.dask_cluster import make_tls

    env = make_tls(Path(args.dir))
    cert, key = env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"], env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"]
    emit(args, {"cert": cert, "key": key, "env": env},
         f"Dask cluster certificate {cert} and key {key} (owner-only); every scheduler, worker and client needs both")
    return 0


def register(sub) -> None:
    p = sub.add_parser("stack", help="bring the multi-machine topology up locally: PostgreSQL, S3, MLflow, Prefect, Dask, serve")
    ssub = p.add_subparsers(dest="stack_command", metavar="up|status|down|deploy|certs", required=True)
    for name, func, help_ in (("up", cmd_up, "start every service under --root and write stack.env"),
                              ("status", cmd_status, "check each service (exit 1 when one is down)"),
                              ("down", cmd_down, "stop every service (data kept unless --purge)"),
                              ("deploy", cmd_deploy, "register the curation pipeline as a (scheduled) deployment on the work pool"),
                              ("certs", cmd_certs, "write the Dask cluster's TLS certificate and key to DIR (kept when present)")):
        q = ssub.add_parser(name, help=help_)
        if name == "certs":
            q.add_argument("dir", help="owner-only folder for cluster.pem and cluster-key.pem (e.g. for compose.yaml)")
        elif name != "deploy":
            q.add_argument("--root", help=f"folder for all data, logs and state (default $KNNCLIP_STACK_ROOT or ./{DEFAULT_ROOT})")
        add_json_flag(q)
        q.set_defaults(func=func)
        if name == "up":
            q.add_argument("--replicas", type=int, default=2, help="knnclip serve replicas (default 2)")
            q.add_argument("--dask-workers", type=int, default=2, help="Dask workers (default 2; 0: no Dask cluster)")
            q.add_argument("--no-prefect", action="store_true", help="leave out the Prefect server and worker")
            q.add_argument("--alias", default="production", help="alias the replicas follow (default production)")
            q.add_argument("--poll-seconds", type=float, default=2.0, help="replicas' alias polling interval")
        if name == "deploy":
            q.add_argument("path", help="dataset the scheduled curation pipeline reads (folder or COCO JSON)")
            q.add_argument("--cron", help='schedule, e.g. "0 3 * * *" (default: runs only when started)')
            q.add_argument("--promote", metavar="ALIAS", help="promote each new release to ALIAS (gate applies)")
            q.add_argument("--alias", default="staging", help="alias a new release gets (default staging)")
            q.add_argument("--backbone")
            q.add_argument("--embed-shards", type=int, default=2, help="parallel embedding tasks (default 2)")
            q.add_argument("--dask-address", help="Dask scheduler (default $KNNCLIP_DASK_ADDRESS)")
            q.add_argument("--pool", help="work pool (default $KNNCLIP_WORK_POOL or knnclip-pool)")
        if name == "down":
            q.add_argument("--purge", action="store_true", help="also delete the root folder with all data")


def main(argv: list[str] | None = None) -> int:
    """`python -m deploy up|status|down ...` (the same as `knnclip stack ...`)."""
    from knnclip_core.errors import KnnclipError

    parser = argparse.ArgumentParser(prog="python -m deploy")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["stack", *(argv if argv is not None else sys.argv[1:])])
    try:
        return int(args.func(args) or 0)
    except KnnclipError as exc:
        print(f"knnclip stack: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
