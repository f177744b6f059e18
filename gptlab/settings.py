"""One way to set a dataclass from text: ``key=value`` overrides and config.json.

Every door takes the same grammar (``python -m train gpt model.n_layer=4 lr=3e-4``,
``python -m gptlab.generate ... temperature=0.5 seed=none``): the type of each key is read from
the dataclass field (int, float, bool, str, a Literal of choices, or one of them ``| None``),
dotted keys reach into nested dataclasses, and the result is a new object built with
``dataclasses.replace``, so frozen configs stay frozen. A wrong key or value raises ConfigError
saying what was wrong (and, for a key, listing the valid ones). Range checks stay with each
dataclass's own ``validate()``, which the caller runs on the result.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from .errors import ConfigError

T = TypeVar("T")

PAIR = re.compile(r"^([A-Za-z_][\w.]*)=(.*)$", re.DOTALL)  # key=value; a dotted key reaches into a field
NONE_WORDS = ("none", "null", "")
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def keys(cls: type) -> dict[str, Any]:
    """Every settable key of a dataclass and its type, nested ones dotted: {'lr': float, 'model.n_layer': int}."""
    out: dict[str, Any] = {}
    for name, kind in _field_types(cls).items():
        if dataclasses.is_dataclass(kind):
            out.update({f"{name}.{key}": sub for key, sub in keys(kind).items()})
        else:
            out[name] = kind
    return out


def values(obj: Any) -> dict[str, Any]:
    """The current value of every key of ``keys(type(obj))``: {'lr': 0.001, 'model.n_layer': 6}."""
    return {key: functools.reduce(getattr, key.split("."), obj) for key in keys(type(obj))}


def override(obj: T, pairs: Iterable[str], *, fixed: Mapping[str, str] | None = None) -> T:
    """``obj`` with each ``key=value`` of ``pairs`` applied, typed by its field; ``obj`` is left as it was.

    ``fixed`` maps keys that exist but may not be set here to the reason (e.g. vocab_size comes
    from the tokenizer). Raises ConfigError for a pair that is not key=value, an unknown or fixed
    key (naming the valid keys), or a value of the wrong type.
    """
    fixed = fixed or {}
    settable = {key: kind for key, kind in keys(type(obj)).items() if key not in fixed}
    changes: dict[str, Any] = {}
    for pair in pairs:
        match = PAIR.match(pair)
        if not match:
            raise ConfigError(f"'{pair}' is not key=value. Valid keys: {', '.join(settable)}.")
        key, raw = match.groups()
        if key in fixed:
            raise ConfigError(f"{key} cannot be set: {fixed[key]}.")
        if key not in settable:
            raise ConfigError(f"Unknown key '{key}'. Valid keys: {', '.join(settable)}.")
        changes[key] = parse_value(key, raw, settable[key])
    return with_values(obj, changes)


def with_values(obj: T, changes: Mapping[str, Any]) -> T:
    """``obj`` with dotted keys set to already typed values, rebuilt by ``dataclasses.replace`` at each level."""
    own: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        head, dot, rest = key.partition(".")
        if dot:
            nested.setdefault(head, {})[rest] = value
        else:
            own[key] = value
    for head, sub in nested.items():
        own[head] = with_values(getattr(obj, head), sub)
    return dataclasses.replace(obj, **own)


def parse_value(key: str, raw: str, kind: Any) -> Any:
    """A command-line string as a value of ``kind``; ConfigError saying what ``key`` takes otherwise."""
    optional = _optional(kind)
    if optional is not None:
        return None if raw.strip().lower() in NONE_WORDS else _parse(key, raw, optional, " or none")
    return _parse(key, raw, kind, "")


def from_json(cls: type[T], data: Any, *, what: str = "config") -> T:
    """A ``cls`` from parsed JSON, every value checked against its field's type; unknown keys are an error.

    Missing keys keep their defaults; nested dataclasses come from nested objects. ``what`` names
    the thing in messages ("model config"). Raises ConfigError; ranges are left to ``validate()``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"The {what} must be a JSON object, got {type(data).__name__}.")
    kinds = _field_types(cls)
    unknown = sorted(set(data) - set(kinds))
    if unknown:
        raise ConfigError(f"The {what} has unknown key(s) {unknown}; valid keys: {', '.join(kinds)}.")
    return cls(**{name: _json_value(name, value, kinds[name], what) for name, value in data.items()})


def _field_types(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)  # resolves the string annotations of `from __future__ import annotations`
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _optional(kind: Any) -> Any:
    """X for ``X | None`` (or Optional[X]); None for any other type."""
    args = get_args(kind)
    if get_origin(kind) in (Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return None


def _parse(key: str, raw: str, kind: Any, or_none: str) -> Any:
    text = raw.strip()
    if get_origin(kind) is Literal:
        if text in get_args(kind):
            return text
        raise ConfigError(f"{key} must be one of {', '.join(map(str, get_args(kind)))}{or_none}, got {raw!r}.")
    if kind is str:
        return raw
    if kind not in READERS:
        raise TypeError(f"settings cannot read a {kind!r} (field {key})")  # a field type this module lacks
    expected, read = READERS[kind]
    try:
        return read(text)
    except ValueError:
        raise ConfigError(f"{key} must be {expected}{or_none}, got {raw!r} (type {kind.__name__}).") from None


def _bool(text: str) -> bool:
    if text.lower() not in TRUE_WORDS + FALSE_WORDS:
        raise ValueError(text)
    return text.lower() in TRUE_WORDS


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # nan and inf parse, and would poison a run
        raise ValueError(text)
    return value


# what a command-line value of each type must look like, and how to read it
READERS: dict[type, tuple[str, Callable[[str], Any]]] = {
    bool: ("true or false", _bool),
    int: ("a whole number", lambda text: int(text.replace("_", ""))),  # 5_000 reads as 5000
    float: ("a number", _finite),
}


def _json_value(name: str, value: Any, kind: Any, what: str) -> Any:
    """``value`` if JSON gave the field's type (an int where a float is asked is widened), else ConfigError."""
    optional = _optional(kind)
    if optional is not None:
        return None if value is None else _json_value(name, value, optional, what)
    if dataclasses.is_dataclass(kind):
        return from_json(kind, value, what=f"{what}'s {name}")
    if get_origin(kind) is Literal:
        if value in get_args(kind):
            return value
        raise ConfigError(f"In the {what}, '{name}' must be one of {list(get_args(kind))}, got {value!r}.")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)  # JSON true is not 1
    if kind is float and number and math.isfinite(value):
        return float(value)
    if (kind is int and number and isinstance(value, int)) or (kind in (bool, str) and isinstance(value, kind)):
        return value
    raise ConfigError(f"In the {what}, '{name}' must be {getattr(kind, '__name__', kind)}, got {value!r}.")
