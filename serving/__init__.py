"""The worker's parts that need the MLflow registry: the registry-backed release source
(`worker_source.RegistryReleaseSource`) and the `segment`, `eval` and `serve` commands (`cli`).
The framework-free worker (HTTP API, server, upload guard, watcher, metrics) is
knnclip_core.serving."""
