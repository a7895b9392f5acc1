"""Decoding IPVS dump replies by a learnt layout: one ``struct`` call per reply instead of a walk.

The kernel writes every destination (and every service) with the same attributes in the same order,
so replies of one length almost always share one layout. The first reply of each length is decoded
by ``ipvs_wire``'s attribute walk, and its layout is learnt: one ``struct`` format covering every
header and value, the headers to check and the values to keep. Later replies of that length are
unpacked in one call; if any attribute header differs from the learnt one (another kernel, another
attribute set) the walk decodes it instead. A layout is kept only if it decodes the reply it was
learnt from exactly as the walk does, so both paths always give the same mapping.

Under the lab's emulation, walking a destination's ~25 attributes cost more than the system calls
that fetched it; this is what brings ``read`` near ``ipvsadm -Sn`` (issue 6).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from socket import AF_INET, inet_ntop
from typing import Any, TypeVar

from ipvsctl.backend.ipvs.attributes import (
    ADDRESS,
    BE16,
    COMMAND_ATTRIBUTES,
    DEST_STATS_NESTS,
    DOTTED,
    FAMILY_OF,
    FLAGS,
    NAME,
    NESTED,
    NESTS,
    STATS_COUNTERS,
    Table,
)
from ipvsctl.backend.ipvs.codec import DEST_FIELDS, SERVICE_FIELDS, DecodedDest, DestValues, dest_from_wire
from ipvsctl.backend.ipvs.wire import NUMBER_FORMATS, decode_dest_reply, decode_service_reply
from ipvsctl.backend.netlink.message import (
    ADDRESS_SIZES,
    ATTRIBUTE,
    ATTRIBUTE_TYPE_MASK,
    GENL_HEADER,
    HEADER,
    Buffer,
    aligned,
)

__all__ = ["LayoutDecoder", "dest_decoder", "service_decoder"]

_V = TypeVar("_V")

MAX_LAYOUTS = 32  # lengths remembered per decoder (names and address families vary them a little)

_HEADER_FORMAT = HEADER.format.lstrip("=")  # one code per field: length, type, flags, sequence, port id
_HEADER_FIELDS = len(_HEADER_FORMAT)
_ATTRIBUTE_FORMAT = ATTRIBUTE.format.lstrip("=")  # length, type
_MESSAGE_LENGTH = struct.Struct("=I")
_LENGTH, _TYPE, _SEQUENCE = 0, 1, 3  # of the nlmsghdr's fields, unpacked
_Getter = Callable[[tuple[Any, ...]], tuple[Any, ...]]
_Compiled = tuple[struct.Struct, "_Layout", _Getter]  # a whole message's unpacker, its layout, its headers' getter
# Fixed-size kinds as one field of a whole-reply format (native order: BE16 is swapped afterwards).
_VALUE_FORMATS = {kind: (code.lstrip("=<>"), struct.calcsize(code)) for kind, code in NUMBER_FORMATS.items()} | {
    FLAGS: ("I4x", 8)
}
_STATS = DEST_STATS_NESTS[-1]
_new_tuple = tuple.__new__


@dataclass(frozen=True, slots=True)
class _Layout:
    """A learnt reply layout: the format, the headers it expects and where each kept value sits."""

    unpack: Callable[[Buffer], tuple[Any, ...]]
    headers: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    expected: tuple[int, ...]
    names: tuple[str, ...]
    values: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    fixes: tuple[tuple[str, str], ...]  # (name, kind) of values that need more than struct gives
    stats: tuple[tuple[str, ...], Callable[[tuple[Any, ...]], tuple[Any, ...]]] | None
    counters: Callable[[tuple[Any, ...]], tuple[Any, ...]]  # STATS_COUNTERS for dest_fields (zeros if none)
    dest_fields: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None  # DEST_FIELDS, when all are there
    service_fields: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None  # SERVICE_FIELDS, when just those

    def decode(self, payload: Buffer) -> dict[str, object] | None:
        """The reply's attributes, or None when its headers are not the learnt ones."""
        return self.decode_values(self.unpack(payload))

    def decode_values(self, raw: tuple[Any, ...]) -> dict[str, object] | None:
        """The attributes from an unpacked reply, or None when its headers are not the learnt ones."""
        if self.headers(raw) != self.expected:
            return None
        return self.attributes_of(raw)

    def attributes_of(self, raw: tuple[Any, ...]) -> dict[str, object] | None:
        """The attributes from an unpacked reply whose headers are known to be the learnt ones (None: let the
        walk decode it)."""
        attributes: dict[str, Any] = dict(zip(self.names, self.values(raw), strict=True))
        for name, kind in self.fixes:
            value = attributes[name]
            if kind == BE16:
                attributes[name] = ((value & 0xFF) << 8) | (value >> 8)
            elif kind == DOTTED:
                attributes[name] = inet_ntop(AF_INET, value)
            elif kind == NAME:
                attributes[name] = value.strip(b"\0").decode("utf-8", "replace")
            else:  # an address, in the family its sibling attribute gives
                family = attributes.get(FAMILY_OF[name], 0)
                size = ADDRESS_SIZES.get(family)
                if size is None or len(value) < size:
                    return None  # let the walk raise its precise error
                attributes[name] = inet_ntop(family, value[:size])
        if self.stats is not None:
            names, getter = self.stats
            attributes[_STATS] = dict(zip(names, getter(raw), strict=True))
        return attributes


class _Builder:
    """Accumulates a layout while walking one reply."""

    def __init__(self) -> None:
        self.format = ["=", f"{GENL_HEADER.size}x"]  # the genlmsghdr: command, version, reserved
        self.count = 0
        self.header_positions: list[int] = []
        self.expected: list[int] = []
        self.names: list[str] = []
        self.positions: list[int] = []
        self.fixes: list[tuple[str, str]] = []
        self.stats: dict[str, tuple[list[str], list[int]]] = {}

    def field(self, code: str, count: int) -> int:
        self.format.append(code)
        self.count += count
        return self.count - count

    def walk(self, data: Buffer, offset: int, end: int, table: Table | None, *, stats: str | None = None) -> bool:
        """Lay out the attributes between offset and end; False when a reply cannot have a fixed layout."""
        numbers = {number: (name, kind) for name, (number, kind) in (table or {}).items()}
        while offset < end:
            if end - offset < ATTRIBUTE.size:
                return False
            length, number = ATTRIBUTE.unpack_from(data, offset)
            padded = aligned(length)
            if length < 4 or offset + padded > end + 3:
                return False
            first = self.field(_ATTRIBUTE_FORMAT, 2)
            self.header_positions += [first, first + 1]
            self.expected += [length, number]
            size = length - 4
            name, kind = numbers.get(number & ATTRIBUTE_TYPE_MASK, ("", ""))
            if kind == NESTED:
                # Destination counters are kept; a service's are not (the walk drops them too): skipped.
                wanted = stats is None and not name.startswith("IPVS_SVC_ATTR_STATS")
                nested_stats = name if name in DEST_STATS_NESTS else None
                table = NESTS.get(name) if wanted else None
                if not self.walk(data, offset + 4, offset + length, table, stats=nested_stats):
                    return False
            elif name and stats is not None and name in STATS_COUNTERS and kind in _VALUE_FORMATS:
                code, width = _VALUE_FORMATS[kind]
                if width != size:
                    return False
                names, positions = self.stats.setdefault(stats, ([], []))
                names.append(name)
                positions.append(self.field(code, 1))
            elif name and stats is None and (kind in _VALUE_FORMATS or kind in (DOTTED, ADDRESS, NAME)):
                if kind in _VALUE_FORMATS:
                    code, width = _VALUE_FORMATS[kind]
                    if width != size:
                        return False
                else:
                    code = f"{size}s"
                    if kind != NAME:
                        self.fixes.append((name, kind))
                if kind == BE16:
                    self.fixes.append((name, kind))
                if kind == NAME:
                    self.fixes.append((name, kind))
                self.names.append(name)
                self.positions.append(self.field(code, 1))
            elif size:
                self.field(f"{size}x", 0)
            if padded - length:
                self.field(f"{padded - length}x", 0)
            offset += padded
        return True

    def layout(self, *, prefix: str = "", shift: int = 0) -> _Layout:
        """The layout; with ``prefix``, of the reply behind that many leading fields (``shift`` values)."""
        stats = None
        for nest in DEST_STATS_NESTS:
            if nest in self.stats:
                names, positions = self.stats[nest]
                stats = (tuple(names), _getter([position + shift for position in positions]))
                break
        fixes = sorted(self.fixes, key=lambda fix: fix[1] == ADDRESS)  # addresses last: they read the family
        where = {name: position + shift for name, position in zip(self.names, self.positions, strict=True)}
        # The model values straight from the fields, when every one is there and the counters are all there
        # in STATS_COUNTERS order (else the mapping path, which fills in what is absent).
        dest_fields: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
        counters: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
        if stats is None:
            counters = _no_counters
        elif stats[0] == STATS_COUNTERS:
            counters = stats[1]
        if counters is not None and all(name in where for name in DEST_FIELDS):
            dest_fields = _getter([where[name] for name in DEST_FIELDS])
        service_fields = None
        if sorted(where) == sorted(SERVICE_FIELDS):  # the usual service reply: any other attribute, the mapping
            service_fields = _getter([where[name] for name in SERVICE_FIELDS])
        return _Layout(
            dest_fields=dest_fields,
            service_fields=service_fields,
            counters=counters or _no_counters,
            unpack=struct.Struct("=" + prefix + "".join(self.format)[1:]).unpack_from,
            headers=_getter([position + shift for position in self.header_positions]),
            expected=tuple(self.expected),
            names=tuple(self.names),
            values=_getter([position + shift for position in self.positions]),
            fixes=tuple(fixes),
            stats=stats,
        )

    def message_format(self) -> str:
        """The struct format of a whole netlink message holding such a reply (nlmsghdr first)."""
        return "=" + _HEADER_FORMAT + "".join(self.format)[1:]


def _no_counters(_raw: tuple[Any, ...]) -> tuple[int, ...]:
    return (0,) * len(STATS_COUNTERS)


def _getter(positions: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A tuple of the values at ``positions`` (itemgetter gives a bare value for one position)."""
    if len(positions) == 1:
        (only,) = positions
        return lambda values: (values[only],)
    return itemgetter(*positions)  # a tuple for two or more positions


class LayoutDecoder:
    """One reply kind's decoder: learnt layouts by reply length, the attribute walk as the reference."""

    def __init__(self, walk: Callable[[Buffer], dict[str, object]]) -> None:
        self._walk = walk
        self._layouts: dict[int, _Layout | None] = {}
        self._builders: dict[int, _Builder] = {}
        self._messages: dict[int, _Compiled] = {}

    def many_dests(
        self,
        data: Buffer,
        *,
        message_type: int,
        seq: int,
        memo: Mapping[tuple[Any, ...], DestValues],
        into: dict[tuple[Any, ...], DestValues],
    ) -> list[DecodedDest] | None:
        """Every destination reply of a ``recv`` buffer as model values at once, straight from the unpacked
        ``DEST_FIELDS`` (no attribute mapping): the ``many_keyed`` conditions, and a layout with every one of
        them. Values decoded before from the same fields come from ``memo`` (the service's last decoding,
        not looked up when empty: a tuple of ten fields hashes at a cost); every value goes ``into``.
        """
        compiled = self._compiled(data)
        if compiled is None:
            return None
        length, unpacker, layout, headers = compiled
        fields = layout.dest_fields
        if fields is None:
            return None
        expected = (length, message_type, seq, *layout.expected)
        dests: list[DecodedDest] = []
        unpack = unpacker.unpack_from
        counters = layout.counters
        for offset in range(0, len(data), length):  # not iter_unpack: making its iterator cost more (lab)
            raw = unpack(data, offset)
            if headers(raw) != expected:
                return None
            values = fields(raw)
            known = memo.get(values) if memo else None
            if known is None:
                known = dest_from_wire(values)
                if known is None:
                    return None  # let the walk raise its precise error
            into[values] = known
            dests.append(_new_tuple(DecodedDest, (*known, counters(raw))))  # DecodedDest(...) without its __new__
        return dests

    def _compiled(self, data: Buffer) -> tuple[int, struct.Struct, _Layout, _Getter] | None:
        """The whole-message layout for a buffer of same-length messages, if one is learnt, with the getter of
        what every message must repeat: its length, type and sequence number, then its attribute headers."""
        if len(data) < 4:
            return None
        length = _MESSAGE_LENGTH.unpack_from(data)[0]
        if length < HEADER.size + GENL_HEADER.size or length % 4 or len(data) % length:
            return None
        compiled = self._messages.get(length)
        if compiled is None:
            builder = self._builders.get(length - HEADER.size)
            if builder is None:
                return None
            positions = [
                _LENGTH,
                _TYPE,
                _SEQUENCE,
                *(position + _HEADER_FIELDS for position in builder.header_positions),
            ]
            layout = builder.layout(shift=_HEADER_FIELDS)
            compiled = (struct.Struct(builder.message_format()), layout, _getter(positions))
            self._messages[length] = compiled
        return (length, *compiled)

    def many_keyed(
        self,
        data: Buffer,
        *,
        message_type: int,
        seq: int,
        decode: Callable[[Mapping[str, object]], _V | None],
        memo: Mapping[tuple[Any, ...], _V],
        into: dict[tuple[Any, ...], _V],
        from_wire: Callable[[tuple[Any, ...]], _V | None] | None = None,
    ) -> list[tuple[tuple[Any, ...], _V | None]] | None:
        """Every reply of a ``recv`` buffer at once, when the buffer is only replies of one learnt length (of
        ``message_type`` and ``seq``; None to walk it instead), as ``decode`` of its attributes, keyed by its
        unpacked fields.

        Memoised by those fields: a reply whose fields are in ``into`` (this decoding's values) or ``memo``
        (an earlier one's) is not decoded at all, and every value goes ``into``. Plain dicts, looked up
        inline: a method call per reply cost more than the look-up under emulation (lab). With ``from_wire``
        (``decode``'s answer from the values of ``SERVICE_FIELDS``, or None to leave the buffer to the walk), a
        layout of just those skips the mapping.
        """
        compiled = self._compiled(data)
        if compiled is None:
            return None
        length, unpacker, layout, headers = compiled
        expected = (length, message_type, seq, *layout.expected)
        unpack = unpacker.unpack_from
        wire_fields = layout.service_fields if from_wire is not None else None
        replies: list[tuple[tuple[Any, ...], _V | None]] = []
        for offset in range(0, len(data), length):
            raw = unpack(data, offset)
            if headers(raw) != expected:
                return None
            fields = (length, *layout.values(raw))
            value = into.get(fields)
            if value is None:
                value = memo.get(fields)
                if value is None and wire_fields is not None and from_wire is not None:
                    value = from_wire(wire_fields(raw))
                    if value is None:
                        return None  # not the fast path's to decide: the walk decodes the buffer
                elif value is None:
                    attributes = layout.attributes_of(raw)
                    if attributes is None:
                        return None
                    value = decode(attributes)
                if value is not None:
                    into[fields] = value
            replies.append((fields, value))
        return replies

    def __call__(self, payload: Buffer) -> dict[str, object]:
        """The reply's attributes, exactly as the walk gives them."""
        layout = self._layouts.get(len(payload))
        if layout is not None:
            decoded = layout.decode(payload)
            if decoded is not None:
                return decoded
        attributes = self._walk(payload)
        if len(payload) not in self._layouts and len(self._layouts) < MAX_LAYOUTS:
            builder = _learn(payload, attributes)
            self._layouts[len(payload)] = None if builder is None else builder.layout()
            if builder is not None:
                self._builders[len(payload)] = builder
        return attributes

    @property
    def layouts(self) -> Mapping[int, bool]:
        """Reply lengths seen, and whether each has a usable layout (for tests)."""
        return {length: layout is not None for length, layout in self._layouts.items()}


def _learn(payload: Buffer, walked: Mapping[str, object]) -> _Builder | None:
    """The layout (as its builder) of ``payload``, if it decodes that very reply as the walk did."""
    builder = _Builder()
    if not builder.walk(payload, GENL_HEADER.size, len(payload), COMMAND_ATTRIBUTES):
        return None
    try:
        decoded = builder.layout().decode(payload)
    except (struct.error, ValueError, TypeError, KeyError):
        return None
    return builder if decoded == walked else None


def dest_decoder() -> LayoutDecoder:
    """A decoder of destination dump replies (``decode_dest_reply``, learning layouts)."""
    return LayoutDecoder(decode_dest_reply)


def service_decoder() -> LayoutDecoder:
    """A decoder of service replies (``decode_service_reply``, learning layouts)."""
    return LayoutDecoder(decode_service_reply)
