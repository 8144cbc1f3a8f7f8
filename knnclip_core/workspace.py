"""The workspace: one folder (KNNCLIP_HOME, default ./.knnclip) holding all state."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import Settings


@dataclass(frozen=True)
class Workspace:
    """Paths of everything knnclip keeps; `ensure()` creates them on first use."""

    home: Path
    catalog_url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> "Workspace":
        home = Path(settings.home).expanduser().resolve()
        url = settings.catalog_url or f"sqlite:///{home / 'catalog.db'}"
        return cls(home=home, catalog_url=url)

    @property
    def memory_dir(self) -> Path:
        """LanceDB database folder (one table per embedder)."""
        return self.home / "memory"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def data_docs_dir(self) -> Path:
        """Great Expectations HTML reports."""
        return self.home / "reports" / "data_docs"

    @property
    def cache_dir(self) -> Path:
        """Caches (text embeddings, downloaded releases)."""
        return self.home / "cache"

    @property
    def prefect_dir(self) -> Path:
        return self.home / "prefect"

    @property
    def lock_dir(self) -> Path:
        return self.home / "locks"

    def ensure(self) -> "Workspace":
        for path in (self.home, self.memory_dir, self.reports_dir, self.cache_dir, self.lock_dir):
            path.mkdir(parents=True, exist_ok=True)
        return self
