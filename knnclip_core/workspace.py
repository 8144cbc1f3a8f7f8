"""The workspace: one folder (KNNCLIP_HOME, default ./.knnclip) holding all state."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .config import Settings
from .errors import ConfigError
from .pg_lock import is_postgres_url


@dataclass(frozen=True)
class Workspace:
    """Paths of everything knnclip keeps; `ensure()` creates them on first use."""

    home: Path
    catalog_url: str
    memory_location: str = ""  # KNNCLIP_MEMORY_URI ('' : the memory folder of the workspace)
    lock_url: str = ""  # KNNCLIP_LOCK_URL ('' : the catalog when it is PostgreSQL)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Workspace":
        """The workspace of `settings`. Raises ConfigError (a ValueError too) for a lock URL that is not PostgreSQL."""
        home = Path(settings.home).expanduser().resolve()
        url = settings.catalog_url or f"sqlite:///{home / 'catalog.db'}"
        if settings.lock_url and not is_postgres_url(settings.lock_url):
            raise _LockUrlError("KNNCLIP_LOCK_URL must be a PostgreSQL URL (postgresql+psycopg://user@host:port/db)")
        return cls(home=home, catalog_url=url, memory_location=(settings.memory_uri or "").rstrip("/"),
                   lock_url=settings.lock_url or "")

    @property
    def memory_dir(self) -> Path:
        """Local LanceDB database folder of the workspace (the memory unless KNNCLIP_MEMORY_URI says otherwise)."""
        return self.home / "memory"

    @property
    def memory_uri(self) -> str:
        """Where the memory (LanceDB database, one table per embedder) lives: a local folder or
        an object-store URI such as s3://bucket/prefix."""
        return self.memory_location or str(self.memory_dir)

    @property
    def memory_is_local(self) -> bool:
        """True when the memory is a folder on this machine."""
        return "://" not in self.memory_uri

    @property
    def shared_lock_url(self) -> Optional[str]:
        """PostgreSQL URL whose advisory locks every machine shares (the lock URL, else a
        PostgreSQL catalog); None: locks are files in `lock_dir`."""
        return self.lock_url or (self.catalog_url if is_postgres_url(self.catalog_url) else None)

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
        local = (Path(self.memory_uri),) if self.memory_is_local else ()
        for path in (self.home, *local, self.reports_dir, self.cache_dir, self.lock_dir):
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot make the workspace folder {path} (KNNCLIP_HOME or --home): "
                                  f"{exc.strerror or exc}") from None
        return self


class _LockUrlError(ConfigError, ValueError):
    """KNNCLIP_LOCK_URL is not a PostgreSQL URL (a ValueError, as it always was)."""
