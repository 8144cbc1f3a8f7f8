"""The segmentation worker without a registry: the HTTP API (`service.create_app`, which takes a
release source callable), its server with a header deadline (`http_server`), the upload guard,
the release watcher and the Prometheus metrics. The registry-backed release source and the
`segment`/`eval`/`serve` commands are the top-level `serving` package (they need MLflow)."""
