"""Config mistakes as one sentence: reading YAML files strictly, and turning a pydantic
ValidationError into a sentence naming where the value came from (the file or the
environment variable), the key and the reason."""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import yaml

from .errors import ConfigError
from .redact import redact_text

SECRET_KEYS = frozenset({"worker_token", "catalog_url", "lock_url", "memory_uri"})  # values never repeated


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML keeps the last silently)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice (first on line {seen[key] + 1})", key_node.start_mark)
        except TypeError:
            continue  # an unhashable key: construct_mapping below says so
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_yaml(path: Path, what: str = "YAML file") -> dict[str, Any]:
    """The mapping of a YAML file (empty file: {}). Raises ConfigError naming `what` and the file
    when it cannot be read, is not UTF-8, is not plain YAML (tags such as !!python/...,
    duplicated keys, syntax) or is not a mapping at the top level."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{what} {path} line {line} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "constructor for the tag" in problem:
            problem = "tags are not allowed (plain YAML only): " + problem
        raise ConfigError(f"{what} {path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path}: expected a mapping (key: value lines) at the top level, "
                          f"found a {type(data).__name__}")
    return data


def _fields(model) -> dict:
    return getattr(model, "model_fields", {}) or {}


def _sub_model(model, name: str):
    field = _fields(model).get(name)
    if field is None:
        return None
    ann = field.annotation
    return ann if isinstance(ann, type) and _fields(ann) else None


def _field_loc(loc: Sequence, settings_cls) -> tuple[str, ...]:
    """The loc of a pydantic error cut to real keys (drops union member tags such as 'int')."""
    out, model = [], settings_cls
    for part in map(str, loc):
        out.append(part)
        if model is None or part not in _fields(model):
            break  # past a plain field (what follows are type tags), or an unknown key
        model = _sub_model(model, part)
        if model is None:
            break
    return tuple(out)


def _model_at(settings_cls, loc: Sequence[str]):
    model = settings_cls
    for part in loc:
        model = _sub_model(model, part) if model is not None else None
    return model


def _env_var(loc: Sequence[str], environ: Mapping[str, str]) -> Optional[str]:
    upper = {k.upper(): k for k in environ}
    for i in range(len(loc), 0, -1):
        name = "KNNCLIP_" + "__".join(loc[:i]).upper()
        if name in upper:
            return upper[name]
    return None


def _in_layer(layer: Mapping, loc: Sequence[str]) -> bool:
    node: Any = layer
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _source(loc: Sequence[str], layers: Sequence[tuple[str, Mapping]], overrides: Mapping,
            environ: Mapping[str, str]) -> str:
    if loc and loc[0] in overrides:
        return "the settings given"
    var = _env_var(loc, environ)
    if var:
        return f"environment variable {var}"
    for name, layer in reversed(layers):
        if _in_layer(layer, loc):
            return name
    return "the settings"


def explain_settings_error(exc, settings_cls, environ: Optional[Mapping[str, str]] = None) -> str:
    """One sentence for pydantic-settings' SettingsError: the KNNCLIP_* variable of a section or
    of a mapping setting whose value is not the JSON object it must be."""
    import json

    environ = os.environ if environ is None else environ
    text = str(exc)
    field = text.split('"')[1] if text.count('"') >= 2 else ""
    for var in sorted(environ):
        if not var.upper().startswith(f"KNNCLIP_{field.upper()}"):
            continue
        loc = tuple(p.lower() for p in var[len("KNNCLIP_"):].split("__"))
        model, leaf = settings_cls, None
        for part in loc:
            leaf = _fields(model).get(part) if model is not None else None
            model = _sub_model(model, part) if model is not None else None
        if leaf is None or not (model is not None or leaf.annotation is dict):
            continue
        try:
            json.loads(environ[var])
        except ValueError:
            return (f"environment variable {var}: {'.'.join(loc)}: expected a JSON object such as {{\"key\": 1}}"
                    + (f"; or set one key with {var}__KEY=value" if model is not None else ""))
    return redact_text(f"a KNNCLIP_{field.upper()} variable is not valid JSON ({text})")


def explain_validation_error(exc, settings_cls, layers: Sequence[tuple[str, Mapping]], overrides: Mapping,
                             environ: Optional[Mapping[str, str]] = None) -> str:
    """One sentence for the first error of a pydantic ValidationError of `settings_cls`: where the
    value came from (override, KNNCLIP_* variable, or the highest YAML layer holding it), the
    dotted key, the reason (with the closest known key for an unknown one) and the value given
    (never for secrets)."""
    environ = os.environ if environ is None else environ
    errors = exc.errors()
    err = errors[0]
    loc = _field_loc(err.get("loc") or (), settings_cls)
    key = ".".join(loc) or "settings"
    where = _source(loc, layers, overrides, environ)
    if err.get("type") == "extra_forbidden":
        parent = _model_at(settings_cls, loc[:-1])
        known = sorted(_fields(parent)) if parent is not None else []
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6) if loc else []
        hint = f"did you mean {'.'.join([*loc[:-1], close[0]])}?" if close else f"known keys: {', '.join(known)}"
        reason = f"unknown key ({hint})"
    else:
        msg = str(err.get("msg") or "invalid value")
        msg = msg.removeprefix("Value error, ")
        reason = msg[:1].lower() + msg[1:]
        if err.get("type") != "value_error" and not (set(loc) & SECRET_KEYS) and "input" in err and not isinstance(err["input"], (dict, list)):
            shown = repr(err["input"])
            reason += f" (got {shown[:80] + '...' if len(shown) > 80 else shown})"
    more = f"; {len(errors) - 1} more mistake(s) after it" if len(errors) > 1 else ""
    return redact_text(f"{where}: {key}: {reason}{more}")
