"""An unreadable alias history raises and is never overwritten by the next move."""
from __future__ import annotations

import pytest

from conftest import local_registry
from test_registry import seeded_snapshot


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    return local_registry(tmp_path, monkeypatch, "history-guard")


def test_unreadable_history_refuses_the_move_and_survives(ctx, tmp_path):
    from registry.aliases import HISTORY_TAG, AliasHistoryError, move_alias, read_history, rollback_alias
    from registry.publish import publish_snapshot

    for i in range(2):
        publish_snapshot(ctx, seeded_snapshot(tmp_path / f"s{i}", {"a": 4 + i}, 20 + i), alias="")
    move_alias(ctx, "production", 1, "promote")
    assert read_history(ctx, "production")["stack"] == [1]
    tag = HISTORY_TAG.format(alias="production")
    ctx.client.set_registered_model_tag(ctx.model_name, tag, "{not json")
    with pytest.raises(AliasHistoryError, match="not a valid alias history"):
        read_history(ctx, "production")
    for move in (lambda: move_alias(ctx, "production", 2, "promote"), lambda: rollback_alias(ctx, "production")):
        with pytest.raises(AliasHistoryError):
            move()
    assert ctx.client.get_registered_model(ctx.model_name).tags[tag] == "{not json"  # not overwritten
    assert ctx.aliases()["production"] == 1  # not moved
    assert read_history(ctx, "staging") == {"stack": [], "log": []}  # no tag yet: empty, not an error


def test_store_errors_are_not_an_empty_history(ctx, tmp_path):
    from registry.aliases import AliasHistoryError, read_history
    from registry.store import RegistryContext

    ctx.ensure_model()
    broken = RegistryContext(ctx.client, ctx.tracking_uri, "bad/name%", ctx.settings, ctx.ws, ctx.artifact_location)
    with pytest.raises(AliasHistoryError, match="cannot be read"):
        read_history(broken, "production")
