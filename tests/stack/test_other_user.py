"""Another local user (uid nobody, through setpriv; where the machine refuses that, this uid with a clean
environment) reaches every port of the running stack but gets into none of it without the credentials of
stack.env: the Dask scheduler (mutual TLS), MLflow (basic auth), Prefect (auth string), PostgreSQL (scram
password); it cannot read stack.env, the Dask key or MLflow's user store. The S3 stand-in (moto) cannot
enforce keys: the README says so, and this test keeps that sentence true. No secret is in any process's argv,
in stack.json or in a log."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


from deploy.dask_cluster import security
from deploy.stack import ENV_FILE, SECRET_VARS, STATE_FILE

from . import probe_client

PROBE = Path(__file__).with_name("probe_client.py")
NOBODY = 65534


def _as_other_uid(cmd: list[str]) -> tuple[list[str], bool]:
    if os.geteuid() == 0 and shutil.which("setpriv"):
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd], True
    return cmd, False


def _public(topology, pg_server, s3_server, mlflow_server, stack_root) -> dict:
    env = topology.env
    return {"env_file": str(topology.root / ENV_FILE), "dask": env["KNNCLIP_DASK_ADDRESS"],
            "dask_key": env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"],
            "mlflow_users": str(stack_root / "auth" / mlflow_server.name / "users.db"),
            "mlflow": mlflow_server.url, "prefect": env["PREFECT_API_URL"],
            "postgres": [pg_server.host, pg_server.port], "s3": s3_server.url, "bucket": s3_server.bucket}


def test_a_local_user_without_the_credentials_is_refused(topology, pg_server, s3_server, mlflow_server, stack_root,
                                                          tmp_path):
    env = topology.env
    public = _public(topology, pg_server, s3_server, mlflow_server, stack_root)
    # with the credentials every service lets the stack's own machines in (so a refusal below is the credential's)
    assert probe_client._dask(public["dask"], security(env)) == env["KNNCLIP_WORKER_TOKEN"]
    search = public["mlflow"] + "/api/2.0/mlflow/experiments/search?max_results=1"
    assert probe_client._http(search, auth=f"knnclip:{env['MLFLOW_TRACKING_PASSWORD']}") == 200
    assert probe_client._http(public["prefect"] + "/flows/filter", b"{}", auth=env["PREFECT_API_AUTH_STRING"]) == 200
    assert probe_client._pg(pg_server.host, pg_server.port, "knnclip", env["KNNCLIP_PG_PASSWORD"]) == ("knnclip",)

    work = stack_root / "probe" / tmp_path.name  # stack_root is traversable by others; pytest's tmp_path is not
    work.mkdir(parents=True)
    os.chmod(work, 0o777)  # the other uid writes its answer here
    (work / "public.json").write_text(json.dumps(public))
    cmd, other_uid = _as_other_uid([sys.executable, str(PROBE), str(work / "public.json"), str(work / "out.json")])
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "DASK_CONFIG": str(work)}
    run = subprocess.run(cmd, env=clean, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads((work / "out.json").read_text())
    assert out.pop("uid") == (NOBODY if other_uid else os.getuid())

    s3 = out.pop("s3, anonymous listing")
    if not other_uid:  # the same uid can read its own files: only the network checks mean something
        out = {k: v for k, v in out.items() if not k.startswith("read ")}
    let_in = {k: v["detail"] for k, v in out.items() if not v["refused"]}
    assert not let_in, f"a local user without credentials got in: {let_in}"
    assert not s3["refused"], "the S3 server now refuses anonymous requests: update README, 'Beyond one machine'"


def test_no_secret_in_argv_state_or_logs(topology, stack_root):
    values = {topology.env[k] for k in SECRET_VARS if topology.env.get(k)}
    values |= {topology.env["PREFECT_API_AUTH_STRING"].split(":", 1)[1]}
    assert len(values) >= len(SECRET_VARS)
    argv = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv.append((proc.name, (proc / "cmdline").read_bytes().decode(errors="replace")))
        except OSError:
            continue
    assert not [pid for pid, a in argv if any(v in a for v in values)], "a secret is on a command line (ps shows it)"
    texts = {str(p): p.read_text(errors="replace") for p in stack_root.rglob("*.log")}
    texts[STATE_FILE] = (topology.root / STATE_FILE).read_text()
    assert not [name for name, t in texts.items() if any(v in t for v in values)], "a secret in a log or stack.json"
    tls = Path(topology.env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"])
    assert tls.parent.stat().st_mode & 0o077 == 0 and tls.stat().st_mode & 0o077 == 0
    assert (topology.root / ENV_FILE).stat().st_mode & 0o077 == 0
