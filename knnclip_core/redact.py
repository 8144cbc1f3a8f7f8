"""Credentials never leave the process: the one place that hides passwords in URLs and text.

A URL setting (MLFLOW_TRACKING_URI, KNNCLIP_S3_ENDPOINT, KNNCLIP_LOCK_URL, KNNCLIP_CATALOG_URL,
PREFECT_API_URL, ...) may carry `user:password@`; messages, logs, HTTP answers, Prefect
artifacts and MLflow tags show it as `user:***@`. `redact_text` also hides the literal value
of every secret variable and of every password found in a URL variable of the environment,
so a library that prints a URL its own way (decoded, split into parts) still shows none.
`install_log_redaction()` makes every log record of the process pass through it.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any, Iterable, Mapping, Optional
from urllib.parse import unquote, urlsplit

MASK = "***"

# variables whose whole value is a secret
SECRET_VARS = ("KNNCLIP_WORKER_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "KNNCLIP_PG_PASSWORD",
               "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING",
               "KNNCLIP_DASHBOARD_TOKEN")
# variables holding URLs that may carry user:password@
URL_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "KNNCLIP_CATALOG_URL", "KNNCLIP_LOCK_URL",
            "KNNCLIP_MEMORY_URI", "KNNCLIP_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
            "PREFECT_API_URL", "MLFLOW_S3_ENDPOINT_URL", "KNNCLIP_WORKER_URL")

# scheme://user:password@ (the password runs to the last @ before the path; ':' may be in it)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s?#]*):(?P<pw>[^/\s?#]*)@")
# ?password=... &token=... in a query string
_QUERY = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|secret|token|api_key|apikey|access_token|"
                    r"x-amz-signature|x-amz-credential|x-amz-security-token|signature)=)(?P<val>[^&#\s'\"]+)",
                    re.IGNORECASE)
_MIN_SECRET = 4  # shorter literal values would mask ordinary words


def _known_secrets(environ: Optional[Mapping[str, str]] = None) -> list[str]:
    env = os.environ if environ is None else environ
    out = {env[k] for k in SECRET_VARS if env.get(k)}
    for k in URL_VARS:
        pw = _url_password(env.get(k) or "")
        if pw:
            out.update({pw, unquote(pw)})
    return sorted((s for s in out if len(s) >= _MIN_SECRET), key=len, reverse=True)


def _url_password(url: str) -> Optional[str]:
    try:
        return urlsplit(url).password if "@" in url else None
    except ValueError:
        m = _USERINFO.search(url)
        return m.group("pw") if m else None


def redact_text(text: Any, environ: Optional[Mapping[str, str]] = None) -> str:
    """`text` (any value, as str) with URL passwords, secret query parameters and the values of
    the environment's secrets replaced by ***."""
    s = str(text)
    if not s:
        return s
    s = _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", s)
    s = _QUERY.sub(lambda m: f"{m.group('head')}{MASK}", s)
    for secret in _known_secrets(environ):
        if secret in s:
            s = s.replace(secret, MASK)
    return s


def redact_url(url: Optional[str]) -> str:
    """`url` with its password (and secret query parameters) hidden, for messages and pages."""
    return redact_text(url or "")


def redact_obj(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings) with every string passed through redact_text."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_obj(v) for v in value) if isinstance(value, list) else tuple(redact_obj(v) for v in value)
    return value


def contains_secret(text: str, secrets: Iterable[str]) -> bool:
    """True when any of `secrets` occurs in `text` (what the fault suite scans outputs with)."""
    return any(s and s in text for s in secrets)


_installed = False


def _redact_arg(value: Any) -> Any:
    if isinstance(value, (int, float)) or value is None:
        return value
    text = str(value)
    clean = redact_text(text)
    return value if clean == text else clean


def _redact_record(record: logging.LogRecord, clean: str) -> None:
    """Redact msg and args one by one (formatters such as uvicorn's read args); when that is
    not enough, keep the redacted message alone."""
    try:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        if record.getMessage() == clean:
            return
    except Exception:  # noqa: BLE001
        pass
    record.msg, record.args = clean, ()


def install_log_redaction() -> None:
    """Make every log record created in this process carry a redacted message (and traceback),
    whatever logger or handler it goes to. Idempotent."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the handler's problem
            return record
        clean = redact_text(message)
        if clean != message:
            _redact_record(record, clean)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def redact_exception(exc: BaseException) -> BaseException:
    """`exc` with the text of its args (and an MLflow-style `message`) redacted, in place; returns it.
    For errors that leave the process as text another program stores (Prefect state messages)."""
    try:
        exc.args = tuple(redact_text(a) if isinstance(a, str) else a for a in exc.args)
        if isinstance(getattr(exc, "message", None), str):
            exc.message = redact_text(exc.message)
    except Exception:  # noqa: BLE001 - an exception that refuses new args keeps its own
        pass
    return exc


def redacting(func):
    """Decorator: the call's log records and any exception it raises carry no credential
    (installs the log redaction in the process that runs it, e.g. a Dask worker)."""
    import functools

    @functools.wraps(func)
    def call(*args, **kwargs):
        install_log_redaction()
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            raise redact_exception(exc)
    return call
