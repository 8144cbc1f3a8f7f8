"""Processes of the local stack: start detached with a log file, wait until ready, stop by group."""
from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from knnclip_core.errors import KnnclipError

DEFAULT_TIMEOUT_S = 90.0


class StackError(KnnclipError, RuntimeError):
    """A service of the local stack could not start, answer or stop."""


@dataclass
class Service:
    """A running service: `url` to reach it, `env` a client needs, `pid` of its process group leader."""

    name: str
    url: str
    env: dict = field(default_factory=dict)
    pid: Optional[int] = None
    log: Optional[Path] = None
    kind: str = ""
    proc: Optional[subprocess.Popen] = field(default=None, repr=False)
    stopper: Optional[Callable[[], None]] = field(default=None, repr=False)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the service (its own stopper, else SIGTERM to its process group, SIGKILL after `timeout`)."""
        if self.stopper is not None:
            self.stopper()
        elif self.pid is not None:
            stop_group(self.pid, timeout)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash, for fault tests)."""
        if self.pid is not None:
            signal_group(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=15)

    def alive(self) -> bool:
        """True while the process group leader runs."""
        if self.proc is not None:
            return self.proc.poll() is None
        return self.pid is not None and pid_alive(self.pid)


def logs_dir(root: Path) -> Path:
    """root/logs, created."""
    d = Path(root) / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def spawn(name: str, cmd: list[str], root: Path, env: Optional[dict] = None, cwd: Optional[Path] = None) -> tuple[subprocess.Popen, Path]:
    """Start `cmd` in its own session with stdout+stderr appended to root/logs/<name>.log; returns (process, log)."""
    log = logs_dir(root) / f"{name}.log"
    full_env = {**os.environ, **(env or {})}
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=full_env, cwd=str(cwd) if cwd else None, start_new_session=True)
    return proc, log


def wait_until(name: str, ready: Callable[[], bool], log: Path, timeout: float = DEFAULT_TIMEOUT_S,
               proc: Optional[subprocess.Popen] = None) -> None:
    """Poll `ready()` until True; raises StackError naming `log` on timeout or when `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
            pass
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{name} exited with status {proc.returncode} before it was ready; see {log}")
        time.sleep(0.3)
    raise StackError(f"{name} was not ready within {timeout:.0f} s; see {log}")


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when GET `url` answers 2xx."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return 200 <= r.status < 300


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (and is not a zombie we own)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def identity(pid: int) -> Optional[dict]:
    """{"start_time": clock ticks since boot, "cmdline": argv} of process `pid` from /proc; None when it is gone.
    A pid alone can be reused: pid + start time + exact argv name one process for its whole life."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after "pid (comm)": field 3 (state) onwards
    return {"start_time": int(fields[19]), "cmdline": [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]}


def same_process(pid: Optional[int], recorded: dict) -> bool:
    """True when `pid` is still the very process `recorded` (its start time and exact argv, see identity)."""
    if not pid or "start_time" not in recorded or "cmdline" not in recorded:
        return False
    now = identity(pid)
    return now is not None and now["start_time"] == recorded["start_time"] and now["cmdline"] == recorded["cmdline"]


def signal_group(pid: int, sig: int) -> None:
    """Send `sig` to the process group led by `pid` (started with start_new_session); ignores a gone group."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the group led by `pid`, SIGKILL it if the leader still runs after `timeout` seconds."""
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    if pid_alive(pid):
        signal_group(pid, signal.SIGKILL)


def launch(name: str, label: str, cmd: list[str], root: Path, url: str, ready: Callable[[], bool],
           env: Optional[dict] = None, client_env: Optional[dict] = None, cwd: Optional[Path] = None,
           timeout: float = DEFAULT_TIMEOUT_S) -> Service:
    """Spawn `cmd` as service `name` (log root/logs/<name>.log), wait for `ready()`; returns the Service with
    `client_env`; on failure stops it and raises StackError naming `label` and the log."""
    proc, log = spawn(name, cmd, root, env=env, cwd=cwd)
    svc = Service(name=name, url=url, pid=proc.pid, log=log, proc=proc, env=dict(client_env or {}))
    try:
        wait_until(label, ready, log, timeout, proc)
    except BaseException:
        svc.stop()
        raise
    return svc


def private_dir(path: Path) -> Path:
    """`path` created if needed and made owner-only (0700): the folder of keys, passwords and auth databases."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> Path:
    """Write `text` to `path` created owner-only (0600) before anything is written into it."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path
