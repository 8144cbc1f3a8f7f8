"""Hot reload: a background thread polls a release source and swaps the served release.

The swap is one reference assignment: a request takes `watcher.current` once at its start and
finishes on that release even if a newer one is swapped in meanwhile. A release that fails to
load or verify is never swapped in; the failure is kept in `last_error` until a later poll
succeeds (and reported by /release and /metrics).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from ..redact import redact_text
from ..segment.release import LoadedRelease, ReleaseSource

logger = logging.getLogger(__name__)


class ReleaseWatcher:
    """Holds the current release and follows the source every `poll_seconds`.

    `on_change(event, release_or_None, error_or_None)` is called after each swap ('swapped')
    and each failed load ('failed') (metrics hook)."""

    def __init__(self, source: ReleaseSource, poll_seconds: float = 10.0,
                 on_change: Optional[Callable[[str, Optional[LoadedRelease], Optional[str]], None]] = None):
        assert poll_seconds > 0
        self.source = source
        self.poll_seconds = poll_seconds
        self.on_change = on_change
        self.current: Optional[LoadedRelease] = None
        self.last_error: Optional[str] = None
        self.last_check: Optional[float] = None
        self.swaps = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._poll_lock = threading.Lock()

    def poll_once(self) -> bool:
        """Ask the source once; swap in a new release when there is one. Returns True on a swap.
        Never raises for a failing release (it is logged and kept in `last_error`)."""
        with self._poll_lock:
            known = self.current.version if self.current else None
            try:
                new = self.source(known)
            except Exception as exc:  # noqa: BLE001 -- any failure keeps the old release
                msg = redact_text(f"{exc.__class__.__name__}: {exc}")  # shown by /readyz and /release
                if msg != self.last_error:
                    logger.error("release reload failed, keeping %s: %s", known or "no release", msg)
                self.last_error = msg
                self.last_check = time.time()
                self._notify("failed", None, msg)
                return False
            self.last_check = time.time()
            if new is None:
                return False
            old = self.current
            self.current = new  # the atomic swap
            self.last_error = None
            self.swaps += 1
            logger.info("serving release %s (was %s)", new.version, old.version if old else None)
            self._notify("swapped", new, None)
            return True

    def _notify(self, event: str, release: Optional[LoadedRelease], error: Optional[str]) -> None:
        if self.on_change is not None:
            try:
                self.on_change(event, release, error)
            except Exception:  # noqa: BLE001
                logger.exception("release change hook failed")

    def start(self) -> None:
        """Start the polling thread (first poll at once)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="knnclip-release-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.poll_seconds)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the polling thread and wait for it (a load in progress finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
