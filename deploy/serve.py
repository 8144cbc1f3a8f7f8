"""`knnclip serve` replicas following one alias, each on its own port with its own local folder."""
from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Optional

from knnclip_core.net import free_port

from deploy.process import Service, http_ok, launch


def start_serve(root: Path, name: str, release: str, env: dict, poll_seconds: float = 2.0,
                port: Optional[int] = None, timeout: float = 120.0) -> Service:
    """Start `knnclip serve --release RELEASE` as replica `name` on 127.0.0.1 (free port when None), its
    workspace in root/machines/<name>; `env` carries MLFLOW_TRACKING_URI and the worker token. Waits for
    /healthz (a release need not exist yet); raises StackError naming the log."""
    root = Path(root).resolve()
    port = port or free_port()
    home = root / "machines" / name
    home.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "knnclip_core.cli.main", "--home", str(home), "serve", "--release", release,
           "--host", "127.0.0.1", "--port", str(port), "--poll-seconds", str(poll_seconds)]
    url = f"http://127.0.0.1:{port}"
    return launch(name, f"serve replica {name}", cmd, root, url, lambda: http_ok(f"{url}/healthz"),
                  env={**env, "KNNCLIP_HOME": str(home)}, timeout=timeout)


def release_of(url: str, token: Optional[str] = None, timeout: float = 5.0) -> dict:
    """GET <url>/release of a serve replica (with the bearer token when set); returns the JSON."""
    req = urllib.request.Request(f"{url}/release", headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())
