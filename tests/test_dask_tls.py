"""The Dask cluster's certificate: made once in an owner-only folder, named through dask's own settings, and a
tls:// scheduler without it configured is one clear sentence (no servers needed)."""
from __future__ import annotations

import dask
import pytest

from knnclip_core.errors import KnnclipError

from deploy.dask_cluster import make_tls, security
from flows.pipeline import dask_runner, dask_security

TLS = "distributed.comm.tls"


def test_certificate_is_owner_only_and_kept(tmp_path):
    env = make_tls(tmp_path / "tls")
    key = tmp_path / "tls" / "cluster-key.pem"
    assert (tmp_path / "tls").stat().st_mode & 0o777 == 0o700 and key.stat().st_mode & 0o777 == 0o600
    assert env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"] == str(key) and "PRIVATE KEY" in key.read_text()
    first = key.read_bytes()
    assert make_tls(tmp_path / "tls") == env and key.read_bytes() == first  # a second `up` keeps the cluster's key
    sec = security(env)
    assert sec.require_encryption and sec.tls_client_key == str(key)


def test_tls_scheduler_needs_the_certificate(tmp_path):
    assert dask_security("tcp://127.0.0.1:8786") is None
    with dask.config.set({f"{TLS}.ca-file": None, f"{TLS}.client.cert": None, f"{TLS}.client.key": None}):
        with pytest.raises(KnnclipError, match=r"takes only clients with the cluster's certificate.*stack.env"):
            dask_runner("tls://127.0.0.1:8786", 2)
    env = make_tls(tmp_path / "tls")
    conf = {f"{TLS}.ca-file": env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"],
            f"{TLS}.client.cert": env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"],
            f"{TLS}.client.key": env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"]}
    with dask.config.set(conf):
        runner = dask_runner("tls://127.0.0.1:8786", 2)
    sec = runner.client_kwargs["security"]
    assert sec.require_encryption and sec.tls_client_cert == conf[f"{TLS}.client.cert"]
