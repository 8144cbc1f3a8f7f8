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


def test_alias_history_is_a_table_in_the_registered_models_description(ctx, tmp_path):
    """Readable in the MLflow UI: the registered model's description ends with a markdown table
    of every move (newest first), the text before it kept; the JSON tag stays the record."""
    from registry.aliases import HISTORY_HEADING, move_alias, read_history, rollback_alias
    from registry.publish import publish_snapshot

    for i in range(2):
        publish_snapshot(ctx, seeded_snapshot(tmp_path / f"s{i}", {"a": 4 + i}, 20 + i), alias="")
    move_alias(ctx, "production", 1, "promote", note="first | release")
    move_alias(ctx, "production", 2, "promote")
    move_alias(ctx, "staging", 2, "publish")
    rollback_alias(ctx, "production")
    text = ctx.client.get_registered_model(ctx.model_name).description
    head, _, table = text.partition(HISTORY_HEADING)
    assert head.startswith("knnclip retrieval memory snapshots")  # the original description kept
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| when")]
    cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]
    log = sorted([(e["at"], a, e) for a in ("production", "staging") for e in read_history(ctx, a)["log"]],
                 key=lambda t: t[0], reverse=True)
    assert [(c[1], c[2], c[3], c[4]) for c in cells] == [
        (a, e["action"], str(e["previous"]) if e["previous"] is not None else "-", str(e["version"])) for _, a, e in log]
    assert ("production", "rollback", "2", "1") in [(c[1], c[2], c[3], c[4]) for c in cells]
    assert "first \\| release" in table  # a pipe in a note does not break the table
    assert text.count(HISTORY_HEADING) == 1
