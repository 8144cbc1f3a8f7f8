"""Serving an ASGI app with uvicorn, with a deadline on request headers (slowloris).

uvicorn times out idle keep-alive connections, but a client that opens a connection and sends
its request line and headers a byte at a time holds it for ever: a thousand such clients take
every file descriptor. `HeaderTimeoutH11` closes a connection whose request headers are not
complete `header_timeout_s` after it opened (or after the previous response).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Optional

from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

DEFAULT_HEADER_TIMEOUT_S = 10.0


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    _header_timer: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's headers are complete
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # the next request's headers have a deadline too (armed first: pipelined ones disarm it)
        super().on_response_complete()
        if self.transport.is_closing():
            self._disarm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            logger.info("closing a connection whose request headers took over %g s", self.header_timeout_s)
            self.transport.close()


def header_timeout_protocol(seconds: float) -> type:
    """A HeaderTimeoutH11 class with `seconds` as its header deadline (uvicorn's `http=`)."""
    return type("HeaderTimeoutH11", (HeaderTimeoutH11,), {"header_timeout_s": float(seconds)})


def serve(app, host: str, port: int, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
          log_level: str = "warning") -> None:
    """Run `app` with uvicorn on host:port until interrupted, with the header deadline."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, http=header_timeout_protocol(header_timeout_s))
