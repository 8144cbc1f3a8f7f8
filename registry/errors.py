"""MLflow's errors as one sentence: the CLI's registry commands and the flows' registry tasks
say the same thing, with no traceback and no credential."""
from __future__ import annotations

import functools

from knnclip_core.errors import KnnclipError
from knnclip_core.redact import redact_text


def registry_error(exc: BaseException) -> KnnclipError:
    """The KnnclipError sentence for an MlflowException `exc` (its first line, redacted)."""
    first = (str(getattr(exc, "message", exc)).strip().splitlines() or ["unknown error"])[0]
    return KnnclipError(f"the model registry refused the request: {redact_text(first)[:300]}")


def registry_sentences(func):
    """Decorator: an MlflowException raised by `func` becomes `registry_error`'s sentence."""
    @functools.wraps(func)
    def call(*args, **kwargs):
        from mlflow.exceptions import MlflowException

        try:
            return func(*args, **kwargs)
        except MlflowException as exc:
            raise registry_error(exc) from None
    return call
