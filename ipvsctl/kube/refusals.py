"""Why an object was refused by msgspec, said as the API would: the object named, the field, and the value.

msgspec's type errors name a path (``$.spec.ports[1].port``) and the types involved. The value itself is
found again at that path in a plain decoding of the refused object (that slow path runs only for a refused
object), so the message says what it is: ``must be an integer, got string``, or for an integer field the
range it must be in and the integer, described by its size when it is huge. ``object_names`` reads the
name of any object, parsed or not, for logs and Events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

import msgspec

from ipvsctl.errors import ObjectError
from ipvsctl.kube.checks import (
    INTEGER_REQUIREMENTS,
    ApiObject,
    Kind,
    OversizedInteger,
    RawObject,
    bounded_json_integer,
    describe_integer,
    identify,
    json_type,
)

__all__ = ["explained", "object_names"]


class _Names(msgspec.Struct, gc=False):
    name: object = None
    namespace: object = None
    uid: object = None


class _Named(msgspec.Struct, rename="camel", gc=False):
    api_version: object = None
    metadata: _Names | None = None  # typed: a generic decoding would build all of managedFields


_NAMED = msgspec.json.Decoder(_Named)


def object_names(obj: RawObject) -> tuple[object, object, object, object]:
    """``(name, namespace, uid, apiVersion)`` of any object, each of whatever type it has (None: absent or
    unreadable): how an object is named in logs and Events, whether or not it parses."""
    if isinstance(obj, ApiObject):
        obj = obj.data
    if isinstance(obj, bytes | bytearray | memoryview):
        try:
            named = _NAMED.decode(obj)
        except msgspec.MsgspecError:
            return None, None, None, None
        names = named.metadata or _Names()
        return names.name, names.namespace, names.uid, named.api_version
    if isinstance(obj, Mapping):
        api_version, metadata = obj.get("apiVersion"), obj.get("metadata")
    else:
        return None, None, None, None
    if not isinstance(metadata, Mapping):
        return None, None, None, api_version
    return metadata.get("name"), metadata.get("namespace"), metadata.get("uid"), api_version


# msgspec: "Expected `int | null`, got `str` - at `$.spec.ports[0].port`" (or "... - at `key` in `$.x`").
_MSGSPEC_ERROR = re.compile(r"(?P<what>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?", re.DOTALL)
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_EXPECTED = re.compile(r"Expected `(?P<types>[^`]*)`")
_PHRASES = {
    "str": "a string",
    "int": "an integer",
    "bool": "a boolean",
    "object": "an object",
    "array": "a list",
    "float": "a number",
}


def explained(message: str, *, raw: RawObject, kind: Kind) -> ObjectError:
    """The ObjectError for msgspec's ``message`` about ``raw``: the object named, the value described."""
    plain = _plain(raw)
    if isinstance(plain, ObjectError):
        return ObjectError(plain.message, obj=kind.name)
    label = identify_plain(plain, kind=kind)
    match = _MSGSPEC_ERROR.fullmatch(message)
    assert match is not None
    path = match["path"] or ""
    steps = [int(index) if index else name for name, index in _PATH_STEP.findall(path)]
    field = path.removeprefix(".")
    value = _at(plain, steps)
    if match["key"]:
        key = next((key for key in value if not isinstance(key, str)), None) if isinstance(value, Mapping) else None
        shown = describe_integer(key) if isinstance(key, int | OversizedInteger) else repr(key)
        return ObjectError(f"keys must be strings, got {json_type(key)} {shown}", obj=label, field=field)
    return ObjectError(_requirement(match["what"], value=value, steps=steps), obj=label, field=field)


def _requirement(what: str, *, value: object, steps: Sequence[str | int]) -> str:
    """What a field must be, and what it is."""
    if value is None:
        return "is required"
    name = next((step for step in reversed(steps) if isinstance(step, str)), "")
    if name in INTEGER_REQUIREMENTS and isinstance(value, int | OversizedInteger) and not isinstance(value, bool):
        return f"{INTEGER_REQUIREMENTS[name]}, got {describe_integer(value)}"
    expected = _EXPECTED.match(what)
    types = expected["types"].split(" | ") if expected else []
    phrase = next((_PHRASES[kind] for kind in types if kind in _PHRASES), "")
    if not phrase:
        return f"cannot be read: {what}"
    return f"must be {phrase}, got {json_type(value)}"


def _plain(raw: RawObject) -> object:
    """The object as plain values (a refused object only); big integers kept as their size."""
    if isinstance(raw, ApiObject):
        raw = raw.data
    if not isinstance(raw, bytes | bytearray | memoryview):
        return raw
    try:
        return json.loads(bytes(raw), parse_int=bounded_json_integer)
    except RecursionError:  # json recurses once per level of nesting
        return ObjectError("nested too deeply to read")
    except ValueError as error:
        return ObjectError(f"is not JSON: {error}")


def _at(value: object, steps: Sequence[str | int]) -> object:
    """The value at ``steps`` inside ``value``; None where the path leads nowhere."""
    for step in steps:
        if isinstance(step, str) and isinstance(value, Mapping):
            value = value.get(step)
        elif isinstance(step, int) and isinstance(value, list) and step < len(value):
            value = value[step]
        else:
            return None
    return value


def identify_plain(plain: object, *, kind: Kind) -> str:
    """The label of a plain object (``Service default/web``); ObjectError when it cannot be identified."""
    if not isinstance(plain, Mapping):
        raise ObjectError(f"must be an object, got {json_type(plain)}", obj=kind.name)
    metadata = plain.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ObjectError(f"must be an object, got {json_type(metadata)}", obj=kind.name, field="metadata")
    metadata = metadata or {}
    return identify(
        plain.get("kind"),
        plain.get("apiVersion"),
        metadata_present=plain.get("metadata") is not None,
        name=metadata.get("name"),
        namespace=metadata.get("namespace"),
        kind=kind,
    )[0]
