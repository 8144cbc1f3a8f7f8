"""Stage lines of the flows: each goes to the Prefect run's logs (the UI's Logs tab) through
`get_run_logger()` and, once, to stderr, so `knnclip run` and `knnclip schedule` show them as
they happen."""
from __future__ import annotations

import logging
import sys
from typing import Callable, Optional

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from knnclip_core.redact import redact_text
from knnclip_core.sentence_log import SentenceFormatter

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class _ConsoleHandler(logging.StreamHandler):
    """Run logs of WARNING and up on stderr (INFO lines print themselves, see `stage`)."""


def _route_run_logs() -> None:
    """Let the run loggers through at INFO, to the API only (the UI's Logs tab): not to the
    console, where the stage lines already print once, and not at PREFECT_LOGGING_LEVEL
    (WARNING by default, flows.prefect_env), which would drop every run log the UI shows.
    Warnings and errors still reach stderr. Idempotent; redone after Prefect reconfigures."""
    for name in RUN_LOGGERS:
        base = logging.getLogger(name)
        if base.getEffectiveLevel() > logging.INFO:
            base.setLevel(logging.INFO)
        if not any(isinstance(h, _ConsoleHandler) for h in base.handlers):
            console = _ConsoleHandler(sys.stderr)
            console.setLevel(logging.WARNING)
            console.setFormatter(SentenceFormatter())
            base.addHandler(console)
        base.propagate = False


_route_run_logs()  # at import (prefect set logging up on its import), so engine lines like
# "Beginning flow run" reach the UI too; `run_logger` redoes it should Prefect reconfigure


def run_logger() -> Optional[logging.LoggerAdapter]:
    """The current flow or task run's logger (see `_route_run_logs`), or None outside a run."""
    _route_run_logs()
    try:
        return get_run_logger()
    except MissingContextError:
        return None


def stage(message: str, echo: bool = True) -> None:
    """Log `message` in the current run; also print it to stderr when `echo` (False where
    another run already printed the same line, e.g. a parent repeating a subflow's line)."""
    message = redact_text(message)
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
