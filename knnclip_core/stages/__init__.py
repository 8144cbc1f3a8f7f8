"""The stages (ingest, embed, curate; publish and promote in registry.stages), one shape each:
`stage(settings, ws, **asked) -> Result`. `settings` already carries what the command line or
the flow asked (knnclip_core.overrides, applied once at the edge); `asked` names only what is
not a setting (a path, a memory, a shard, a version). Each result (stages/results.py) renders
its one summary line (`line()`) and its JSON (`to_json()`). Imports nothing heavy."""
