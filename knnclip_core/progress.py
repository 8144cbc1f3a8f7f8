"""Progress of long loops: a bar on a terminal, a plain line every few seconds elsewhere.

`Progress(total, "embed", "segments", rate_unit="seg")` shows a tqdm bar when its stream is
a TTY; otherwise (log files, pipes, Prefect workers) it writes a line such as
`embed: 1,200/5,000 segments, 85 seg/s, eta 45 s` at most every `every` seconds. The same
lines also go to `log` when one is given (e.g. a run logger), bar or not.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO, Union

# What loops take as `progress=`: False (nothing), True (bar or lines on stderr), or a
# callable that also receives every periodic line.
ProgressArg = Union[bool, Callable[[str], None], None]

DEFAULT_EVERY_S = 10.0


def duration_text(seconds: float) -> str:
    """'45 s', '3 min 5 s', '2 h 4 min' (whole units, for humans)."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _rate_text(rate: float) -> str:
    return f"{rate:,.1f}" if rate < 10 else f"{rate:,.0f}"


class Progress:
    """Counts work done out of `total` and reports it (see the module docstring).

    `clock` (seconds, monotonic) and `stream` are injectable for tests; `bar` forces the
    bar on or off (default: on when `stream` is a TTY); `enabled=False` reports nothing."""

    def __init__(self, total: int, label: str, unit: str = "items", *, rate_unit: Optional[str] = None,
                 log: Optional[Callable[[str], None]] = None, every: float = DEFAULT_EVERY_S,
                 clock: Callable[[], float] = time.monotonic, stream: Optional[TextIO] = None,
                 bar: Optional[bool] = None, enabled: bool = True):
        self.total, self.label, self.unit = int(total), label, unit
        self.rate_unit = rate_unit or unit
        self.every, self.clock = float(every), clock
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.extra: dict[str, int] = {}
        self.started = self.last = clock()
        self.log = log if enabled else None
        use_bar = enabled and (_isatty(self.stream) if bar is None else bar)
        self.echo = enabled and not use_bar
        self._bar = None
        if use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=label, unit=self.rate_unit, leave=False, file=self.stream,
                             dynamic_ncols=True)

    def update(self, n: int = 1, **extra: int) -> None:
        """Add `n` done; `extra` counters (e.g. quarantined=2) are shown beside the count."""
        self.done += n
        self.extra.update(extra)
        if self._bar is not None:
            self._bar.update(n)
            if extra:
                self._bar.set_postfix(self.extra, refresh=False)
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self._emit(self.line(now))

    def line(self, now: Optional[float] = None) -> str:
        """The progress line at time `now` (default: the clock's now)."""
        elapsed = (self.clock() if now is None else now) - self.started
        text = f"{self.label}: {self.done:,}/{self.total:,} {self.unit}"
        if elapsed > 0 and self.done > 0:
            rate = self.done / elapsed
            text += f", {_rate_text(rate)} {self.rate_unit}/s"
            if self.total > self.done:
                text += f", eta {duration_text((self.total - self.done) / rate)}"
        if self.extra:
            text += " (" + ", ".join(f"{v:,} {k}" for k, v in self.extra.items()) + ")"
        return text

    def _emit(self, line: str) -> None:
        if self.echo:
            self.stream.write(line + "\n")
            self.stream.flush()
        if self.log is not None:
            self.log(line)

    def close(self) -> None:
        """End the bar (the loop's own summary line follows)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_for(arg: ProgressArg, total: int, label: str, unit: str, rate_unit: Optional[str] = None) -> Progress:
    """A Progress as a loop's `progress=` argument asks: False/None -> silent, True -> bar or
    lines on stderr, a callable -> the same and every line also sent to it."""
    return Progress(total, label, unit, rate_unit=rate_unit, enabled=bool(arg),
                    log=arg if callable(arg) else None)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a file
        return False
