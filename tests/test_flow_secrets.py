"""Every setting that can carry a secret stays out of flow parameters: the worker token and
both database URLs (catalog, locks), which hold passwords on a shared PostgreSQL."""
from __future__ import annotations

import json

from knnclip_core.config import load_settings


def test_public_settings_hold_no_secret_and_settings_of_takes_them_from_the_environment(tmp_path, monkeypatch):
    from flows.tasks import export_secrets, public_settings, settings_of

    secret = "pw-SENTINELx7q"
    env = {"KNNCLIP_HOME": str(tmp_path / "ws"), "KNNCLIP_WORKER_TOKEN": f"tok-{secret}",
           "KNNCLIP_CATALOG_URL": f"postgresql+psycopg://knnclip:{secret}@127.0.0.1:5432/catalog",
           "KNNCLIP_LOCK_URL": f"postgresql+psycopg://knnclip:{secret}@127.0.0.1:5432/locks"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = load_settings()
    params = public_settings(settings)
    assert secret not in json.dumps(params)
    # every field whose value holds the secret is excluded, not just the ones named today
    leaking = [k for k, v in settings.model_dump(mode="json").items() if secret in json.dumps(v)]
    assert leaking and not set(leaking) & set(params)
    export_secrets(settings)
    back = settings_of({**params, "lock_url": "postgresql://attacker@evil/db"})  # parameters never override them
    assert (back.worker_token, back.catalog_url, back.lock_url) == (settings.worker_token, settings.catalog_url,
                                                                    settings.lock_url)
