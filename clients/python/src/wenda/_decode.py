"""JSON answers into the dataclasses of `wenda.types`, guided by their type hints."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def decode(cls: type[T], data: Any) -> T:
    """Builds `cls` from a JSON object, ignoring fields it does not know."""
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    _share_metadata_back(data)
    hints = _hints(cls)
    known = {name: _value(hints[name], data[name]) for name in hints if name in data}
    return cls(**known)


def _share_metadata_back(data: dict[str, Any]) -> None:
    """Gives each passage of a list its document's metadata, which the server sends once per
    document (a search's or an answer's `document_metadata`, a document's own `metadata`)
    rather than with every passage; a passage that has its own keeps it."""
    if isinstance(data.get("passages"), list) and isinstance(data.get("metadata"), dict):
        # A document: all its passages are its own.
        for passage in data["passages"]:
            if isinstance(passage, dict) and "metadata" not in passage:
                passage["metadata"] = dict(data["metadata"])
        return
    # Search results, or the passages an answer was drawn from.
    ranked = data.get("results", data.get("passages"))
    if isinstance(ranked, list):
        shared = data.get("document_metadata") or {}
        for result in ranked:
            if isinstance(result, dict) and "metadata" not in result:
                path = (result.get("document") or {}).get("path")
                result["metadata"] = dict(shared.get(path) or {})


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """The resolved type of each field (resolved once per class: it is not cheap)."""
    if cls not in _HINTS:
        names = {f.name for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = {name: hint for name, hint in hints.items() if name in names}
    return _HINTS[cls]


def _value(hint: Any, value: Any) -> Any:  # noqa: PLR0911 (one return per kind of hint)
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None:
            return None
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _value(inner, value)
    if origin is list:
        (item,) = typing.get_args(hint)
        return [_value(item, v) for v in value]
    if origin is tuple:
        return tuple(_value(item, v) for item, v in zip(typing.get_args(hint), value, strict=True))
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return decode(hint, value)
    if hint is float and isinstance(value, int):
        return float(value)
    return value
