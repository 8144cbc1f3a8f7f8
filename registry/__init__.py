"""MLflow model registry for knnclip memories: publish FAISS snapshots as registered model
versions, list/show/diff them, promote through a quality gate, roll back, and load a
verified release for the worker.

`from registry import load_release` works as before, but importing the package (e.g. for the
CLI's `registry.cli`) imports MLflow only when one of these names is first used."""
from __future__ import annotations

__all__ = ["Release", "load_release", "parse_ref", "resolve_ref"]


def __getattr__(name: str):
    if name in __all__:
        from . import load

        return getattr(load, name)
    raise AttributeError(f"module 'registry' has no attribute {name!r}")
