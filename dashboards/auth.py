"""The bearer token that guards the dashboard's write actions (promote, rollback): the
worker's token (`worker_token`); with none configured the actions are refused."""
from __future__ import annotations

import hmac
from typing import Optional

from knnclip_core.config import Settings


def token_refusal(settings: Settings, header: Optional[str], form_token: Optional[str]) -> Optional[tuple[int, str]]:
    """None when the request carries the configured token (an `Authorization: Bearer` header,
    or the `token` form field of the page's form), else (status, one-sentence reason)."""
    expected = settings.worker_token
    if not expected:
        return 403, ("promoting and rolling back from the dashboard is off because no worker token is set "
                     "(set `worker_token` in the config or KNNCLIP_WORKER_TOKEN).")
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        given = form_token or ""
    if not given or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return 401, "missing or wrong bearer token: give the worker token to promote or roll back."
    return None
