"""Console log lines without the traceback of an error that ends as one sentence anyway."""
from __future__ import annotations

import logging
import os

from .errors import KnnclipError
from .store_errors import explain

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def is_sentence_error(exc: BaseException | None) -> bool:
    """True for errors the CLI reports as one sentence: a KnnclipError, a damaged store, a full disk."""
    return isinstance(exc, KnnclipError) or (exc is not None and explain(exc, home=os.environ.get("KNNCLIP_HOME")) is not None)


class SentenceFormatter(logging.Formatter):
    """LOG_FORMAT lines; a record whose exception `is_sentence_error` is printed without its
    traceback (Prefect's engines log failures with theirs; the command's sentence follows)."""

    def __init__(self, fmt: str = LOG_FORMAT) -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and is_sentence_error(record.exc_info[1]):
            # a copy: other handlers (Prefect's API log, the UI) keep the traceback
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(record)
