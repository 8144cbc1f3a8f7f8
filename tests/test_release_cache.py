"""The worker's release cache: every copy is verified against its manifest, with or without
a recorded manifest checksum; a release without a manifest is refused; a copy that fails
verification is removed from the cache, never kept."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from knnclip_core.errors import VerificationError
from conftest import local_registry
from test_registry import seeded_snapshot


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    return local_registry(tmp_path, monkeypatch, "cache-test")


def _publish(ctx, tmp_path: Path, seed: int) -> tuple[int, Path]:
    """(version, the folder holding its stored artifacts)."""
    from registry.publish import publish_snapshot

    v = publish_snapshot(ctx, seeded_snapshot(tmp_path / f"s{seed}", {"a": 6, "b": 6}, seed), alias="")["version"]
    from registry.store import snapshot_uri

    return v, Path(url2pathname(urlparse(snapshot_uri(ctx.model_version(v))).path))


def _flip(path: Path, at: int = 100) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_version_without_checksum_tag_is_still_verified_against_its_manifest(ctx, tmp_path):
    from registry import store
    from registry.load import cache_path, load_release

    v, source = _publish(ctx, tmp_path, 1)
    ctx.client.delete_model_version_tag(ctx.model_name, str(v), store.TAG_MANIFEST_SHA)
    assert load_release(v, ctx=ctx).snapshot.ntotal == 12  # intact files: loads
    _flip(source / "index.faiss")
    _flip(cache_path(ctx, v) / "index.faiss")
    with pytest.raises(VerificationError, match="index.faiss"):
        load_release(v, ctx=ctx)
    assert not cache_path(ctx, v).exists()  # the bad download is not kept


def test_release_without_manifest_is_refused_and_not_cached(ctx, tmp_path):
    from registry import store
    from registry.load import cache_path, load_release

    v, source = _publish(ctx, tmp_path, 2)
    (source / "manifest.json").unlink()
    for tagged in (True, False):
        if not tagged:
            ctx.client.delete_model_version_tag(ctx.model_name, str(v), store.TAG_MANIFEST_SHA)
        with pytest.raises(VerificationError, match="no manifest.json"):
            load_release(v, ctx=ctx)
        assert not cache_path(ctx, v).exists()


def test_download_failing_verification_is_removed_from_the_cache(ctx, tmp_path):
    from registry.load import cache_path, load_release

    v, source = _publish(ctx, tmp_path, 3)
    _flip(source / "labels.parquet", at=20)
    with pytest.raises(VerificationError, match="labels.parquet"):
        load_release(v, ctx=ctx)
    assert not cache_path(ctx, v).exists()
    _flip(source / "labels.parquet", at=20)  # repaired at the source: the next load downloads it again
    assert load_release(v, ctx=ctx).snapshot.ntotal == 12
    assert cache_path(ctx, v).is_dir()
