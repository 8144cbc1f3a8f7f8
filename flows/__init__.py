"""Prefect flows over knnclip_core and registry: ingest, embed, curate, publish, and the
end-to-end curation pipeline. Import `flows.pipeline` after `flows.prefect_env.configure`."""
