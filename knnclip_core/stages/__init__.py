"""The stages' typed results (stages/results.py) and the text helpers of their lines
(stages/text.py): pure, importing nothing heavy. The stages themselves, one shape each
(`stage(settings, ws, **asked) -> Result`), are knnclip_core/stage_api.py (ingest, embed,
curate) and registry/stages.py (publish, promote)."""
