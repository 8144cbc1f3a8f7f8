"""MLflow model registry for knnclip memories: publish FAISS snapshots as registered model
versions, list/show/diff them, promote through a quality gate, roll back, and load a
verified release for the worker."""
from .load import Release, load_release, parse_ref, resolve_ref

__all__ = ["Release", "load_release", "parse_ref", "resolve_ref"]
