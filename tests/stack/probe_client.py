"""A local user without the stack's credentials, run as another uid by test_other_user.py:

    python probe_client.py PUBLIC.json OUT.json

PUBLIC.json holds only what stack.json shows anyone (URLs, ports, file names). The probe tries each
service without credentials (and with guessed ones) and writes {check: {"refused": bool, "detail": str}}.
"""
from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.request


def _http(url: str, body: bytes | None = None, auth: str | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _refused(fn) -> dict:
    """Run fn(); a raised error or a 401/403 status is a refusal."""
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001 - any failure to get in is what we want to see
        return {"refused": True, "detail": f"{type(exc).__name__}: {str(exc)[:200]}"}
    if isinstance(out, int):
        return {"refused": out in (401, 403), "detail": f"HTTP {out}"}
    return {"refused": False, "detail": repr(out)[:200]}


def _dask(address: str, security=None):
    from distributed import Client

    with Client(address, timeout=4, security=security) as c:
        return c.submit(lambda: __import__("os").environ.get("KNNCLIP_WORKER_TOKEN")).result(timeout=10)


def _pg(host: str, port: int, user: str, password: str | None):
    import psycopg

    with psycopg.connect(host=host, port=port, user=user, password=password, dbname="postgres",
                         connect_timeout=5) as conn:
        return conn.execute("SELECT current_user").fetchone()


def main(public: dict) -> dict:
    import os

    from distributed.security import Security

    out = {"uid": os.getuid()}
    for name in ("env_file", "dask_key", "mlflow_users"):
        out[f"read {name}"] = _refused(lambda p=public[name]: open(p).read()[:0] or "read")
    dask = public["dask"]
    out["dask, no certificate"] = _refused(lambda: _dask(dask))
    out["dask, plain tcp"] = _refused(lambda: _dask(dask.replace("tls://", "tcp://")))
    out["dask, a certificate of its own"] = _refused(lambda: _dask(dask, Security.temporary()))
    search = public["mlflow"] + "/api/2.0/mlflow/experiments/search?max_results=1"
    out["mlflow, no credentials"] = _refused(lambda: _http(search))
    out["mlflow, guessed password"] = _refused(lambda: _http(search, auth="knnclip:knnclip"))
    out["mlflow artifacts, no credentials"] = _refused(lambda: _http(public["mlflow"] + "/api/2.0/mlflow-artifacts/artifacts"))
    flows = public["prefect"] + "/flows/filter"
    out["prefect, no credentials"] = _refused(lambda: _http(flows, b"{}"))
    out["prefect, guessed auth string"] = _refused(lambda: _http(flows, b"{}", auth="admin:admin"))
    host, port = public["postgres"]
    for user in ("knnclip", "postgres"):
        out[f"postgres as {user}, no password"] = _refused(lambda u=user: _pg(host, port, u, None))
        out[f"postgres as {user}, guessed password"] = _refused(lambda u=user: _pg(host, port, u, "knnclip"))
    out["s3, anonymous listing"] = _refused(lambda: _http(f"{public['s3']}/{public['bucket']}?list-type=2"))
    return out


if __name__ == "__main__":
    result = main(json.loads(open(sys.argv[1]).read()))
    with open(sys.argv[2], "w") as f:
        json.dump(result, f, indent=1)
