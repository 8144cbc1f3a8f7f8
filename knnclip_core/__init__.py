"""knnclip_core: the library behind knnclip (readers, validation, embedders, memory,
index snapshots, segmentation, evaluation, catalog). It never imports prefect or mlflow."""

__version__ = "0.1.0"
