"""Object-store locations (s3://bucket/prefix) and their connection options, read from the
environment only: credentials and endpoints never live in config files or flow parameters.

Variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION (or
AWS_DEFAULT_REGION), and the endpoint of an S3-compatible server in KNNCLIP_S3_ENDPOINT (else
AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL); an http:// endpoint is allowed plain HTTP.
"""
from __future__ import annotations

import os
from typing import Optional

SCHEMES = ("s3",)


def scheme_of(uri: str) -> Optional[str]:
    """'s3' for s3://..., None for a local path. Raises ValueError for another URI scheme."""
    if "://" not in str(uri):
        return None
    scheme = str(uri).split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise ValueError(f"{uri}: unsupported memory location scheme {scheme!r}; use a folder or s3://bucket/prefix")
    return scheme


def s3_endpoint() -> Optional[str]:
    """The S3-compatible endpoint from the environment (None: AWS itself)."""
    env = os.environ
    return env.get("KNNCLIP_S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None


def storage_options(uri: str) -> Optional[dict]:
    """LanceDB/object_store options for `uri` from the environment; None for a local path."""
    if scheme_of(uri) is None:
        return None
    env = os.environ
    opts = {"aws_access_key_id": env.get("AWS_ACCESS_KEY_ID"),
            "aws_secret_access_key": env.get("AWS_SECRET_ACCESS_KEY"),
            "aws_session_token": env.get("AWS_SESSION_TOKEN"),
            "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"}
    endpoint = s3_endpoint()
    if endpoint:
        opts["endpoint"] = endpoint
        if endpoint.lower().startswith("http://"):
            opts["allow_http"] = "true"
    return {k: v for k, v in opts.items() if v}
