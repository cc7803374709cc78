"""Typed, checked access to the JSON of a glTF file: every field read through here is type-, range- and index-checked,
and a bad one raises one :class:`GltfError` naming the file and the field (used by :mod:`facecast.export.gltf_read`).
"""

from __future__ import annotations

import json

import numpy as np


class GltfError(ValueError):
    """A glTF file facecast cannot read: the message names the file and the offending field."""


def is_int(value: object) -> bool:
    """An int that is not a bool (JSON true/false)."""
    return isinstance(value, int) and not isinstance(value, bool)


def show(value: object) -> str:
    """A JSON value for a message, at most 40 characters."""
    text = json.dumps(value) if isinstance(value, (dict, list, str)) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def kind_of(value: object) -> str:
    """A JSON value's type in words ("an object", "a number")."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "null"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


class CheckedJson:
    """Field getters over ``self.doc`` (the parsed document) and ``self.top`` (its top-level arrays); errors name
    ``self.source``."""

    doc: dict
    source: str
    top: dict[str, list[dict]]

    def fail(self, what: str) -> GltfError:
        return GltfError(f"{self.source}: {what}")

    def items(self, key: str) -> list[dict]:
        value = self.doc.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{key} is {kind_of(value)}; it must be an array of objects")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.fail(f"{key}[{i}] is {kind_of(item)}; it must be an object")
        return value

    def obj(self, parent: dict, key: str, where: str) -> dict | None:
        value = parent.get(key)
        if value is not None and not isinstance(value, dict):
            raise self.fail(f"{where}.{key} is {kind_of(value)}; it must be an object")
        return value

    def objects(self, parent: dict, key: str, where: str) -> list[dict]:
        value = parent.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{where}.{key} is {kind_of(value)}; it must be an array of objects")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.fail(f"{where}.{key}[{i}] is {kind_of(item)}; it must be an object")
        return value

    def integer(self, parent: dict, key: str, where: str, *, default: int | None = None, lo: int = 0,
                required: bool = False) -> int | None:  # fmt: skip
        if key not in parent:
            if required:
                raise self.fail(f"{where}.{key} is missing")
            return default
        value = parent[key]
        if not is_int(value) or value < lo:
            raise self.fail(f"{where}.{key} is {show(value)}; it must be an integer >= {lo}")
        return value

    def index(self, parent: dict, key: str, where: str, kind: str, *, required: bool = False) -> int | None:
        value = self.integer(parent, key, where, required=required)
        if value is not None and value >= len(self.top[kind]):
            raise self.fail(f"{where}.{key} is {value}, but the file has {len(self.top[kind])} {kind}")
        return value

    def index_list(self, parent: dict, key: str, where: str, kind: str, *, unique: bool = True) -> list[int]:
        value = parent.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{where}.{key} is {kind_of(value)}; it must be an array of {kind} indices")
        for k, item in enumerate(value):
            if not is_int(item) or not 0 <= item < len(self.top[kind]):
                raise self.fail(f"{where}.{key}[{k}] is {show(item)}, not one of the {len(self.top[kind])} {kind}")
        if unique and len(set(value)) != len(value):
            raise self.fail(f"{where}.{key} lists a {kind[:-1]} twice")
        return list(value)

    def numbers(self, parent: dict, key: str, where: str, size: int, default: tuple) -> np.ndarray:
        value = parent.get(key, default)
        ok = isinstance(value, (list, tuple)) and len(value) == size
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        out = np.asarray(value, np.float64) if ok else None
        if out is None or not np.isfinite(out).all():
            raise self.fail(f"{where}.{key} is {show(value)}; it must be {size} finite numbers")
        return out

    def text(self, parent: dict, key: str, where: str) -> str | None:
        value = parent.get(key)
        if value is not None and not isinstance(value, str):
            raise self.fail(f"{where}.{key} is {kind_of(value)}; it must be a string")
        return value
