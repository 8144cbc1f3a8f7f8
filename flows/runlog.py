"""Stage lines of the flows: each goes to the Prefect run's logs (the UI's Logs tab) through
`get_run_logger()` and, once, to stderr, so `knnclip run` and `knnclip schedule` show them as
they happen."""
from __future__ import annotations

import logging
import sys
from typing import Callable, Optional

from prefect import get_run_logger
from prefect.exceptions import MissingContextError


def run_logger() -> Optional[logging.LoggerAdapter]:
    """The current flow or task run's logger, or None outside a run. Its logger is let through
    at INFO even where PREFECT_LOGGING_LEVEL is WARNING (which quiets the console, see
    flows.prefect_env, but would also drop every run log the UI shows)."""
    try:
        log = get_run_logger()
    except MissingContextError:
        return None
    base = getattr(log, "logger", None)
    if base is not None and not base.isEnabledFor(logging.INFO):
        base.setLevel(logging.INFO)
    return log


def stage(message: str, echo: bool = True) -> None:
    """Log `message` in the current run; also print it to stderr when `echo` (False where
    another run already printed the same line, e.g. a parent repeating a subflow's line)."""
    log = run_logger()
    if log is not None:
        log.info(message)
    if echo:
        print(message, file=sys.stderr, flush=True)


def progress_sink() -> Callable[[str], None] | bool:
    """The `progress=` argument of knnclip_core loops inside a run: periodic lines go to the
    run's logs as well as to the terminal (bar) or stderr (lines)."""
    log = run_logger()
    return log.info if log is not None else True
