"""The catalog: what was ingested, from where, and what was set aside."""
from .models import ClassName, CurationRun, Dataset, ForgetRule, Image, IngestBatch, Quarantine, Segment
from .store import get_engine, session_scope

__all__ = ["ClassName", "CurationRun", "Dataset", "ForgetRule", "Image", "IngestBatch", "Quarantine",
           "Segment", "get_engine", "session_scope"]
