"""What the worker checks before an upload costs anything: the bearer token (constant time)
and the body size, declared and streamed, with a deadline for the whole body, all in an
ASGI layer that runs before FastAPI reads a byte of the body; and the image's pixel count
from its header before decoding, large photos decoded at reduced scale.
"""
from __future__ import annotations

import asyncio
import hmac
import io
import json
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image

from ..errors import InputError

OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # liveness probes answer without the token
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the image itself


class UploadTooLarge(InputError):
    """The image (bytes or pixels) is over the worker's limits: HTTP 413."""


class _Rejected(Exception):
    pass


@dataclass
class GuardLimits:
    """token: bearer token (None: open); max_body: bytes; body_timeout_s: seconds for the whole
    body; open_paths: paths answered without the token; guarded_paths: the only paths checked
    (None: every path; the dashboard guards its upload paths alone)."""

    token: Optional[str]
    max_body: int
    body_timeout_s: float
    open_paths: frozenset = OPEN_PATHS
    guarded_paths: Optional[frozenset] = None


def token_ok(header: str, token: str) -> bool:
    """True when `header` is `Bearer <token>` (compared in constant time)."""
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def _reply(send, status: int, detail: str, headers: tuple = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})


class UploadGuard:
    """ASGI middleware: 401 without the token (all paths but `limits.open_paths`), 413 for a declared or
    streamed body over `max_body`, 408 for a body slower than `body_timeout_s`; checked before
    the application reads the body, so rejected uploads are never parsed or spooled to disk."""

    def __init__(self, app, limits: GuardLimits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        lim = self.limits
        if lim.guarded_paths is not None and scope["path"] not in lim.guarded_paths:
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if lim.token and scope["path"] not in lim.open_paths and not token_ok(headers.get("authorization", ""), lim.token):
            return await _reply(send, 401, "missing or wrong bearer token", ((b"www-authenticate", b"Bearer"),))
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > lim.max_body):
            return await _reply(send, 413, f"request body larger than {lim.max_body} bytes")
        state = {"error": None, "replied": False, "seen": 0}
        deadline = asyncio.get_running_loop().time() + lim.body_timeout_s

        async def guarded_receive():
            if state["error"]:
                raise _Rejected()
            try:
                msg = await asyncio.wait_for(receive(), max(0.001, deadline - asyncio.get_running_loop().time()))
            except asyncio.TimeoutError:
                state["error"] = (408, f"request body not received within {lim.body_timeout_s:g} s")
                raise _Rejected() from None
            if msg["type"] == "http.request":
                state["seen"] += len(msg.get("body", b""))
                if state["seen"] > lim.max_body:
                    state["error"] = (413, f"request body larger than {lim.max_body} bytes")
                    raise _Rejected()
            return msg

        async def guarded_send(msg):
            if state["error"] is None:
                return await send(msg)
            if not state["replied"]:  # the app's own answer to the broken body is replaced
                state["replied"] = True
                await _reply(send, *state["error"])

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if state["error"] is None:
                raise
        if state["error"] is not None and not state["replied"]:
            state["replied"] = True
            await _reply(send, *state["error"])


def decode_upload(data: bytes, max_pixels: int, max_side: Optional[int]) -> tuple[np.ndarray, float]:
    """RGB uint8 (H, W, 3) of an uploaded image and the scale it was decoded at (1.0: full size).

    The pixel count is read from the header first; images whose long side exceeds `max_side`
    are decoded at reduced scale (JPEG's DCT scaling, then a resize), so a large photo costs
    little CPU. Raises UploadTooLarge over `max_pixels` (or a decompression bomb), InputError
    when the bytes are not a readable image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        with im:
            w, h = im.size
            if w * h > max_pixels:
                raise UploadTooLarge(f"the image has {w * h} pixels, more than the limit of {max_pixels}.")
            scale = 1.0
            if max_side and max(w, h) > max_side:
                scale = max_side / max(w, h)
                target = (max(1, round(w * scale)), max(1, round(h * scale)))
                im.draft("RGB", target)  # JPEG: decode at 1/2, 1/4 or 1/8 directly; others: no-op
                rgb = im.convert("RGB").resize(target, Image.BILINEAR)
            else:
                rgb = im.convert("RGB")
            return np.asarray(rgb), scale
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadTooLarge(f"the image is a decompression bomb (more than the limit of {max_pixels} pixels).") from None
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"the upload is not a readable image ({exc.__class__.__name__}).") from None
