"""Records: frozen dataclasses read from, and written to, one JSON object each.

    @record
    class Point(Record):
      x: float
      label: Optional[str] = absent_if_none()

    Point.from_json({"x": 1.0}, "point.json")   # Point(x=1.0, label=None)
    Point(2.0, "a").to_json()                   # {"x": 2.0, "label": "a"}

The typed results of the analysis (analysis/results.py) and the reproduction's
summary (reproduction/summary.py) are records. `from_json` refuses a dict with
a missing or an unknown field, and a value of the wrong JSON kind where a
record, list or object is due (ValueError naming where), so a file of another
schema fails where it is read; field types are otherwise not checked. Nested
records, tuples (JSON lists) and dicts (JSON objects keyed by names that vary
by run) are decoded by the field's annotation. `to_json` gives back the dict
json.dump writes, leaving out the fields marked `absent_if_none()` while they
are None; other Nones are written as null.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from collections.abc import Mapping

def json_object(value, where: str) -> Mapping:
  """value, when it is a JSON object; else a ValueError naming where it is."""
  if not isinstance(value, Mapping):
    raise ValueError(f"{where} must be an object, got {type(value).__name__}")
  return value


def _decode(tp, value, where: str):
  if typing.get_origin(tp) in (typing.Union, types.UnionType):  # Optional[X], X | None
    if value is None:
      return None
    (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
  if isinstance(tp, type) and issubclass(tp, Record):
    return tp.from_json(value, where)
  origin, args = typing.get_origin(tp), typing.get_args(tp)
  if origin is tuple:
    if not isinstance(value, (list, tuple)):
      raise ValueError(f"{where} must be a list, got {type(value).__name__}")
    return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
  if origin in (dict, Mapping):
    return {k: _decode(args[1], v, f"{where}.{k}") for k, v in json_object(value, where).items()}
  return value


def _encode(value):
  if isinstance(value, Record):
    return value.to_json()
  if isinstance(value, (tuple, list)):
    return [_encode(v) for v in value]
  if isinstance(value, Mapping):
    return {k: _encode(v) for k, v in value.items()}
  return value


class Record:
  """A frozen dataclass read from, and written to, one JSON object."""

  @classmethod
  @functools.cache
  def _hints(cls) -> dict:
    return typing.get_type_hints(cls)

  @classmethod
  def from_json(cls, obj: Mapping, where: str = "results"):
    json_object(obj, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - set(fields))
    missing = [n for n, f in fields.items()
               if n not in obj and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if unknown or missing:
      article = "an" if cls.__name__[0] in "AEIOU" else "a"
      raise ValueError(f"{where} is not {article} {cls.__name__}: "
                       + "; ".join(([f"unknown {', '.join(unknown)}"] if unknown else [])
                                   + ([f"missing {', '.join(missing)}"] if missing else [])))
    hints = cls._hints()
    return cls(**{n: _decode(hints[n], obj[n], f"{where}.{n}") for n in fields if n in obj})

  def to_json(self) -> dict:
    return {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)
            if not (f.metadata.get("absent_if_none") and getattr(self, f.name) is None)}

  @classmethod
  def load(cls, path: str):
    """The results saved at path (ValueError when they do not follow cls's fields; the
    pages' writers, report/, save them)."""
    with open(path) as f:
      return cls.from_json(json.load(f), path)

  @classmethod
  def saved(cls, path: str):
    """The results saved at path; None when there are none, or when they were written
    under another schema (a stage then makes them again)."""
    if not os.path.exists(path):
      return None
    try:
      return cls.load(path)
    except ValueError:
      return None


record = dataclasses.dataclass(frozen=True)


def as_saved(value):
  """value as its JSON reads back (tuples as lists): a config or settings dict held by
  a record this way makes the record equal to its saved file."""
  return json.loads(json.dumps(value))


def absent_if_none():
  """A field that is None by default and left out of the JSON while None (a field
  whose None means "not measured" is written as null instead)."""
  return dataclasses.field(default=None, metadata={"absent_if_none": True})
