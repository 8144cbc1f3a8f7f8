"""Flow tasks retry only what a retry can cure (transient I/O), judged on real Prefect states."""
import errno

import pytest
from prefect.states import Completed, Failed

from flows.tasks import retry_on_io
from knnclip_core.errors import BusyError, InputError

TRANSIENT = [ConnectionResetError("peer reset"), TimeoutError("slow"), OSError(errno.EIO, "I/O error"),
             OSError(errno.EAGAIN, "try again"), BrokenPipeError("pipe")]
PERMANENT = [FileNotFoundError(errno.ENOENT, "no such file"), PermissionError(errno.EACCES, "denied"),
             IsADirectoryError(errno.EISDIR, "a folder"), OSError(errno.ENOSPC, "disk full"),
             InputError("bad row"), BusyError("held"), ValueError("bad value"), KeyError("k")]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient_errors_are_retried(exc):
    assert retry_on_io(None, None, Failed(data=exc)) is True


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: f"{type(e).__name__}-{getattr(e, 'errno', '')}")
def test_other_failures_are_not(exc):
    assert retry_on_io(None, None, Failed(data=exc)) is False


def test_a_completed_state_is_not_retried():
    assert retry_on_io(None, None, Completed(data=1)) is False
