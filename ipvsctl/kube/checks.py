"""What every Kubernetes object's values are checked with, whether it parses (``parse.py``) or not (``refusals.py``).

An object arrives as the API sent it (``ApiObject``: JSON bytes) or as a reader decoded it; its identity
(kind, apiVersion, metadata.name) is checked first, then each value by a ``Checker`` whose errors name the
object and the field. Integers are described by their size when they are huge (``OversizedInteger`` stands
for one too long to convert).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import msgspec

from ipvsctl.errors import ObjectError
from ipvsctl.kube import wire
from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import canonical_ip

__all__ = [
    "INT32_REQUIREMENT",
    "INTEGER_REQUIREMENTS",
    "MAX_INTEGER_TEXT",
    "PORT_REQUIREMENT",
    "ApiObject",
    "Checker",
    "Kind",
    "OversizedInteger",
    "RawObject",
    "bounded_json_integer",
    "describe_integer",
    "identify",
    "json_type",
]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ApiObject:
    """One object as the API sent it: its JSON bytes, and the kind and apiVersion of the resource it came from.

    The bytes are decoded straight into the wire Structs when the object is parsed; an item of a list
    response carries neither kind nor apiVersion of its own, so the resource's stand in for them.
    """

    data: bytes
    kind: str
    api_version: str


# An object as the API sends it (JSON bytes), or as a JSON or YAML reader decoded it.
RawObject = ApiObject | bytes | bytearray | memoryview | Mapping[str, object]

# bool before int: a bool is an int to isinstance, but never to the API.
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "list"),
    (Mapping, "object"),
)

# Every integer field of Service, EndpointSlice and Node is an int32 in the API.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_SHOWN_LIMIT = 2**64  # beyond this an integer is described by its size: str() refuses past 4300 digits
PORT_REQUIREMENT = "must be a port between 1 and 65535"
INT32_REQUIREMENT = "must be a 32-bit integer"
# What each integer field must be, by its name (the last step of its path).
INTEGER_REQUIREMENTS: Mapping[str, str] = {
    "port": PORT_REQUIREMENT,
    "nodePort": PORT_REQUIREMENT,
    "healthCheckNodePort": PORT_REQUIREMENT,
    "timeoutSeconds": INT32_REQUIREMENT,
}
# Longer integer literals are not converted when an object is decoded again to explain its error: int()
# refuses more than 4300 digits. A Kubernetes integer needs at most 20 characters.
MAX_INTEGER_TEXT: Final = 64


@dataclass(frozen=True, slots=True)
class OversizedInteger:
    """An integer literal too long to convert, which a reader keeps as its length instead of calling int().

    ``int()`` raises ValueError past 4300 digits, and no Kubernetes field needs more than ten. An object
    holding one fails only when parse reads that field, as with any other wrong value.
    """

    digits: int


def bounded_json_integer(text: str) -> int | OversizedInteger:
    """A JSON integer literal as an int, or as its size when it is too long to convert (``json``'s parse_int)."""
    if len(text) > MAX_INTEGER_TEXT:
        return OversizedInteger(len(text.removeprefix("-")))
    return int(text)


def json_type(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, OversizedInteger):
        return "integer"
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), type(value).__name__)


def describe_integer(value: int | OversizedInteger) -> str:
    """An integer for a message: its digits when it has few, else its size."""
    if isinstance(value, OversizedInteger):
        return f"an integer of {value.digits} digits"
    if -_SHOWN_LIMIT < value < _SHOWN_LIMIT:
        return str(value)
    return f"an integer of {value.bit_length()} bits"


@dataclass(frozen=True, slots=True)
class Kind:
    """How one kind is decoded and identified."""

    name: str
    wire_type: type[wire.Service] | type[wire.EndpointSlice] | type[wire.Node]
    api_versions: Sequence[str]
    namespaced: bool
    decoder: msgspec.json.Decoder[object]


def identify(
    given_kind: object, api_version: object, *, metadata_present: bool, name: object, namespace: object, kind: Kind
) -> tuple[str, ObjectRef]:
    """Check kind, apiVersion and metadata.name; the object's label and its ref.

    ``kind`` and ``apiVersion`` may be absent: items of an API list response carry neither.
    A namespaced object without a namespace is in ``default``, as ``kubectl apply`` would put it.
    """
    check = Checker(kind.name)
    given = check.text(given_kind, "kind", default=kind.name)
    if given != kind.name:
        raise check.error("kind", f"expected {kind.name}, got {given!r}")
    version = check.text(api_version, "apiVersion", default=kind.api_versions[0])
    if version not in kind.api_versions:
        raise check.error("apiVersion", f"must be one of {', '.join(kind.api_versions)}, got {version!r}")
    if not metadata_present:
        raise check.error("metadata", "is required")
    text = check.text(name, "metadata.name")
    if not text:
        raise check.error("metadata.name", "must not be empty")
    space = (check.text(namespace, "metadata.namespace", default="") or "default") if kind.namespaced else ""
    ref = ObjectRef(space, text)
    return f"{kind.name} {ref}", ref


# --- checking values ---------------------------------------------------------------------------------


class Checker:
    """The checks of one object's values, whose errors name the object (types are msgspec's already)."""

    __slots__ = ("kind", "ref")

    def __init__(self, kind: str, ref: ObjectRef | None = None) -> None:
        self.kind = kind
        self.ref = ref  # None until the object is identified

    @property
    def label(self) -> str:
        """``Service default/web`` (only the kind while the object is not identified); written for errors only."""
        return self.kind if self.ref is None else f"{self.kind} {self.ref}"

    def error(self, field: str, message: str) -> ObjectError:
        """An ObjectError about ``field`` of this object."""
        return ObjectError(message, obj=self.label, field=field)

    def text(self, value: object, field: str, *, default: str | None = None) -> str:
        """A string; required unless a default is given."""
        if type(value) is str:
            return value
        if value is None:
            if default is None:
                raise self.error(field, "is required")
            return default
        if not isinstance(value, str):
            raise self.error(field, f"must be a string, got {json_type(value)}")
        return value

    def port(self, value: int | None, field: str) -> int:
        """A required port number 1..65535."""
        number = self.optional_port(value, field)
        if number is None:
            raise self.error(field, "is required")
        return number

    def optional_port(self, value: int | None, field: str) -> int | None:
        """A port number 1..65535, None when absent."""
        if value is not None and not 1 <= value <= 65535:
            raise self.error(field, f"{PORT_REQUIREMENT}, got {describe_integer(value)}")
        return value

    def int32(self, value: int | None, field: str) -> int | None:
        """A 32-bit integer, None when absent."""
        if value is not None and not INT32_MIN <= value <= INT32_MAX:
            raise self.error(field, f"{INT32_REQUIREMENT}, got {describe_integer(value)}")
        return value

    def ip(self, value: str | None, field: str) -> str:
        """A required IP address, in canonical form."""
        if value is None:
            raise self.error(field, "is required")
        try:
            return canonical_ip(value)
        except ValueError:
            raise self.error(field, f"{value!r} is not an IP address") from None

    def choice(self, value: str | None, allowed: Mapping[str, _T], field: str, *, default: str | None = None) -> _T:
        """One of the ``allowed`` names, mapped to its value; required unless defaulted."""
        if value in allowed:
            return allowed[value]  # type: ignore[index]  # a str: only strings are in allowed
        text = self.text(value, field, default=default)
        if text not in allowed:
            raise self.error(field, f"must be one of {', '.join(allowed)}, got {text!r}")
        return allowed[text]

    def string_map(self, value: Mapping[str, object] | None, field: str) -> dict[str, str]:
        """A string → string map (labels, annotations); its keys are strings already."""
        if not value:
            return {}
        for key, item in value.items():
            if not isinstance(item, str):
                self.text(item, f"{field}[{key}]")
        return value  # type: ignore[return-value]  # every value was checked to be a string
