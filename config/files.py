"""Reading one config file into a settings model, or stopping with one sentence that says what is wrong.

A wrong setting must stop synth with a sentence that names the file, the key, the value and what is
allowed: never a pydantic dump, never a jsii traceback from deep inside a construct.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

CONTEXT_SOURCE = "CDK context"
M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A bad setting, stated in one sentence."""

    @classmethod
    def bad_value(cls, source: str, key: str, value: Any, allowed: str) -> ConfigError:
        return cls(f"{source}: key '{key}' has value {render(value)}; allowed: {allowed}.")


def validate_file(model: type[M], path: Path) -> M:
    source = display(path)
    data = _read_yaml(path, source)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_sentence(source, model, error)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a config file must not."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _read_yaml(path: Path, source: str) -> Any:
    if not path.is_file():
        raise ConfigError(f"{source}: the file is missing; allowed: a YAML mapping of settings at this path.")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(
            f"{source}: the file is not valid YAML ({problem}{where}); allowed: a YAML mapping of settings."
        ) from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the file holds {render(data)}; allowed: a YAML mapping of settings.")
    return data


def _sentence(source: str, model: type[BaseModel], error: ValidationError) -> str:
    """The first problem of a pydantic error as one sentence; the count of the others in brackets."""
    errors = error.errors()
    # A misspelt key shows up twice, as unknown and as a required key missing: name the misspelling.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    key = ".".join(str(part) for part in first["loc"])
    more = error.error_count() - 1
    tail = f" ({more} more problem{'s' if more > 1 else ''} in this file)" if more else ""
    kind = first["type"]
    if kind == "missing":
        return f"{source}: required key '{key}' is missing; allowed: {_allowed(model, first['loc'])}{tail}."
    if kind == "extra_forbidden":
        parent = _model_at(model, first["loc"][:-1])
        known = ", ".join(parent.model_fields) if parent else "none"
        return (
            f"{source}: key '{key}' (value {render(first['input'])}) is not a known setting; "
            f"allowed: one of {known}{tail}."
        )
    # A validator's own message already says what is allowed; otherwise the field's description does.
    allowed = str(first["ctx"]["error"]) if kind == "value_error" else _allowed(model, first["loc"]) or first["msg"]
    return f"{source}: key '{key}' has value {render(first['input'])}; allowed: {allowed}{tail}."


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part)
        annotation = field.annotation if field else None
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return current


def _allowed(model: type[BaseModel], loc: Sequence[Any]) -> str:
    parent = _model_at(model, [p for p in loc[:-1] if not isinstance(p, int)])
    name = next((p for p in reversed(loc) if not isinstance(p, int)), None)
    field = parent.model_fields.get(name) if parent and name else None
    if field is None:
        return ""
    if field.description:
        return field.description
    nested = _model_at(parent, [name]) if parent else None
    if nested:
        return "a mapping with the keys " + ", ".join(nested.model_fields)
    return ""


def render(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
