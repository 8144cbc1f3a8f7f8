"""Counts the images that go through an embedder's dense forward, so a benchmark can state
how many forwards each image costs (a measurement, not arithmetic on its own rates)."""
from __future__ import annotations


class ForwardCounter:
    """Context manager wrapping `embedder.forward` (every dense forward of the pipeline, the
    worker and `embed_batch` passes through it) to count calls and images.

    >>> with ForwardCounter(emb) as c: emb.embed_masks(image, masks)
    >>> c.calls, c.images   # 1, 1
    """

    def __init__(self, embedder):
        self.embedder = embedder
        self.calls = 0
        self.images = 0

    def __enter__(self) -> "ForwardCounter":
        inner = type(self.embedder).forward

        def counted(x):
            self.calls += 1
            self.images += int(x.shape[0])
            return inner(self.embedder, x)

        self.embedder.forward = counted  # instance attribute shadows the class method
        return self

    def __exit__(self, *exc) -> None:
        del self.embedder.forward


def cuda_sync(device: str) -> None:
    """Wait for queued CUDA work, so that a timer reads finished work (no-op on the CPU)."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()
