"""The background prefetch used when decoding runs in process."""
import threading

import pytest

from knnclip_core.embedders.prefetch import prefetch


def test_prefetch_keeps_order_and_bounds_lookahead():
    produced = []

    def source():
        for i in range(50):
            produced.append(i)
            yield i

    it = prefetch(source(), depth=2)
    assert next(it) == 0
    assert len(produced) <= 4  # the one handed out, two queued, one waiting to be queued
    assert list(it) == list(range(1, 50))


def test_prefetch_reraises_the_producer_error():
    def source():
        yield 1
        raise OSError("disk gone")

    it = prefetch(source())
    assert next(it) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(it)


def test_closing_early_stops_the_producer():
    it = prefetch(iter(range(10_000)), depth=1)
    assert next(it) == 0
    it.close()
    for t in threading.enumerate():
        if t.name == "knnclip-prefetch":
            t.join(timeout=5)
            assert not t.is_alive()
