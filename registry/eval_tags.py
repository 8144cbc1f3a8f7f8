"""Names the evaluation runs and the version descriptions share (registry.eval_runs writes them,
registry.describe reads them); apart so that neither module imports the other both ways."""

EVAL_EXPERIMENT = "knnclip-eval"
TAG_LATEST_RUN = "knnclip.eval.latest_run"      # on the model version
TAG_LATEST_MIOU = "knnclip.eval.latest_miou"    # on the model version
