"""IPVS generic-netlink messages ⇄ bytes, without pyroute2: the encoder and decoder the hot paths use.

Pure (no I/O). Compiles the attribute tables of ``attributes`` once, at import, into per-attribute packers
and readers; the netlink and generic-netlink headers are ``netlink``'s. ``codec`` owns what the attributes
mean: this module takes its ``Request`` objects (values as pyroute2 takes them) and gives back the mappings
its ``decode_*`` functions read (values as the pyroute2 transport makes them from pyroute2).

Encoding is byte for byte pyroute2's ``ipvsmsg`` (IPv4 addresses in 4 bytes, strings NUL-terminated,
nests without ``NLA_F_NESTED``, zero padding). Decoding skips attribute types it does not know (newer
kernels add some) and refuses, with ``WireFormatError``, lengths that run past their container.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Any

from ipvsctl.backend.ipvs.attributes import (
    ADDRESS,
    ALL_FLAGS,
    BE16,
    CMD_DEL_DEST,
    CMD_NEW_DEST,
    CMD_NEW_SERVICE,
    CMD_SET_DEST,
    CMD_SET_SERVICE,
    COMMAND_ATTRIBUTES,
    DEST_STATS_NESTS,
    DOTTED,
    FAMILY_OF,
    FLAGS,
    GENL_VERSION,
    NAME,
    NESTS,
    SERVICE_STATS_NESTS,
    STATS_COUNTERS,
    TIMEOUT_ATTRIBUTES,
    TRAFFIC,
    TRAFFIC_COUNTERS,
    U8,
    U16,
    U32,
    U64,
    Table,
)
from ipvsctl.backend.ipvs.codec import (
    DEST_KEY_SENT,
    DEST_SENT,
    FWMARK_KEY_SENT,
    SERVICE_KEY_SENT,
    SETTINGS_SENT,
    Request,
    dest_values,
    request_for,
    service_key_values,
    settings_values,
)
from ipvsctl.backend.netlink.message import (
    ADDRESS_SIZES,
    ATTRIBUTE,
    ATTRIBUTE_TYPE_MASK,
    GENL_HEADER,
    HEADER,
    NLM_F_REQUEST,
    SEQUENCE_OFFSET,
    Buffer,
    WireFormatError,
    aligned,
)
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    DeleteRealServer,
    EditRealServer,
    EditVirtualService,
    Operation,
    ServiceKey,
)

__all__ = [
    "NUMBER_FORMATS",
    "KeyedRequests",
    "OperationMessages",
    "batch_encoder",
    "decode_dest_reply",
    "decode_dest_traffic_reply",
    "decode_service_reply",
    "decode_service_traffic_reply",
    "decode_timeouts_reply",
    "encode_request",
]

# Layouts of the fixed-size kinds (read; written with zero padding to a multiple of 4 bytes).
NUMBER_FORMATS: Mapping[str, str] = {U8: "=B", U16: "=H", U32: "=I", U64: "=Q", BE16: ">H"}
_READ_FORMATS = {**NUMBER_FORMATS, FLAGS: "=I4x", DOTTED: "=4s"}
_FLAGS = struct.Struct("=II")


# --- encoding -----------------------------------------------------------------------------------------

_Encoder = Callable[[Any], bytes]


def _encoder(name: str, number: int, kind: str) -> _Encoder:
    header = ATTRIBUTE.pack
    if kind in NUMBER_FORMATS:
        size = struct.calcsize(NUMBER_FORMATS[kind])
        fixed, pack = header(4 + size, number), struct.Struct(f"{NUMBER_FORMATS[kind]}{-size % 4}x").pack
        return lambda value: fixed + pack(value)
    if kind == FLAGS:
        fixed, pack = header(4 + _FLAGS.size, number), _FLAGS.pack
        return lambda value: fixed + pack(value["flags"], value["mask"])
    if kind == DOTTED:
        fixed = header(8, number)
        return lambda value: fixed + inet_pton(AF_INET, value)
    if kind == ADDRESS:  # pyroute2 takes the family from the AF attribute; the address itself tells the same

        def address(value: str) -> bytes:
            packed = inet_pton(AF_INET6 if ":" in value else AF_INET, value)
            return header(4 + len(packed), number) + packed

        return address
    if kind == NAME:

        def name_(value: str) -> bytes:
            data = value.encode()
            return header(5 + len(data), number) + data + b"\0" * (4 - len(data) % 4)  # NUL, then padding

        return name_
    encoders = _encoders(NESTS[name])

    def nested(value: Mapping[str, Any]) -> bytes:
        body = _encode_attributes(encoders, value["attrs"])
        return header(4 + len(body), number) + body

    return nested


def _encoders(table: Table) -> Mapping[str, _Encoder]:
    return {name: _encoder(name, number, kind) for name, (number, kind) in table.items()}


def _encode_attributes(encoders: Mapping[str, _Encoder], attributes: list[tuple[str, Any]]) -> bytes:
    try:
        return b"".join([encoders[name](value) for name, value in attributes])
    except KeyError as error:
        raise WireFormatError(f"unknown IPVS attribute (or missing field) {error} at this level") from error
    except (struct.error, OSError, TypeError) as error:  # a number out of range, a bad address, a wrong type
        raise WireFormatError(f"cannot encode IPVS attributes {attributes!r}: {error}") from error


_COMMAND_ENCODERS = _encoders(COMMAND_ATTRIBUTES)


def batch_encoder(requests: Sequence[Request], *, family_id: int) -> Callable[[int, int, int], bytes]:
    """Encodes ``requests[index]`` with a sequence number and extra flags: ``NetlinkChannel.batch``'s encoder."""

    def encode(index: int, seq: int, extra: int) -> bytes:
        return encode_request(requests[index], family_id=family_id, flags=NLM_F_REQUEST | extra, seq=seq)

    return encode


def encode_request(request: Request, *, family_id: int, flags: int, seq: int, port_id: int = 0) -> bytes:
    """A full netlink message: nlmsghdr, genlmsghdr (command, GENL_VERSION) and the attributes."""
    body = _encode_attributes(_COMMAND_ENCODERS, request.attributes)
    length = HEADER.size + GENL_HEADER.size + len(body)
    return (
        HEADER.pack(length, family_id, flags, seq, port_id) + GENL_HEADER.pack(request.command, GENL_VERSION, 0) + body
    )


_SEQUENCE = struct.Struct("=I")
_BE16 = struct.Struct(">H")
_Template = tuple[bytearray, int, int] | None  # message, where the address starts, its size; None: encode in full


class KeyedRequests:
    """The messages of one request kind that differs from service key to service key only in the key (a
    destination dump, a GET): each key shape (family, protocol) encoded in full once, then each message a
    copy of that one with the address, port (or mark) and sequence number written in place.

    A read sends one per service, and encoding the attribute lists afresh cost a fresh read of 10,000
    services 0.9 s of 7.4 in the lab. A template is kept only if it patches back into the very bytes the
    full encoding gives for the key it was made from (else that shape is always encoded in full);
    ``tests/contract/test_ipvs_wire.py`` checks any key against the full encoding.
    """

    __slots__ = ("_build", "_family_id", "_flags", "_templates")

    def __init__(self, build: Callable[[ServiceKey], Request], *, family_id: int, flags: int) -> None:
        self._build = build
        self._family_id = family_id
        self._flags = flags
        self._templates: dict[tuple[str, bool], _Template] = {}

    def message(self, key: ServiceKey, *, seq: int) -> bytes:
        """The request for ``key`` with the sequence number ``seq``."""
        shape = (key.protocol, ":" in key.address)
        if shape not in self._templates:
            return self._learn(shape, key, seq=seq)
        template = self._templates[shape]
        if template is None:
            return self._full(key, seq=seq)
        message, start, size = template
        copy = message[:]
        try:
            _SEQUENCE.pack_into(copy, SEQUENCE_OFFSET, seq)
            if size:
                copy[start : start + size] = inet_pton(AF_INET6 if size == 16 else AF_INET, key.address)
                _BE16.pack_into(copy, len(copy) - 4, key.port)
            else:  # a firewall mark: the last attribute, a u32
                _SEQUENCE.pack_into(copy, len(copy) - 4, key.port)
        except (OSError, struct.error):  # what the full encoding refuses, it refuses with its own words
            return self._full(key, seq=seq)
        return bytes(copy)

    def _full(self, key: ServiceKey, *, seq: int) -> bytes:
        return encode_request(self._build(key), family_id=self._family_id, flags=self._flags, seq=seq)

    def _learn(self, shape: tuple[str, bool], key: ServiceKey, *, seq: int) -> bytes:
        encoded = self._full(key, seq=seq)
        size = 0 if key.is_fwmark else 16 if shape[1] else 4
        # The key's attributes come last: the address, then the port (4 bytes with its padding), or the mark.
        self._templates[shape] = (bytearray(encoded), len(encoded) - 8 - size, size)
        if self.message(key, seq=seq) != encoded:
            self._templates[shape] = None
        return encoded


_Slot = tuple[int, int, Callable[[Any], Any] | None]  # where in the packed values, which value, its conversion
_Flat = tuple[struct.Struct, list[Any], tuple[_Slot, ...]]
_ServiceOperation = AddVirtualService | EditVirtualService
_RealServerOperation = AddRealServer | EditRealServer | DeleteRealServer
_COMMANDS: Mapping[type, int] = {
    AddVirtualService: CMD_NEW_SERVICE,
    EditVirtualService: CMD_SET_SERVICE,
    AddRealServer: CMD_NEW_DEST,
    EditRealServer: CMD_SET_DEST,
    DeleteRealServer: CMD_DEL_DEST,
}


def _swapped(value: int) -> int:
    """A u16 in network order, as a host-order u16 packs it (a struct has one byte order)."""
    return ((value & 0xFF) << 8) | (value >> 8)


def _packed_address(value: str) -> bytes:
    return inet_pton(AF_INET6 if ":" in value else AF_INET, value)


def _dotted(value: str) -> bytes:
    return inet_pton(AF_INET, value)


def _flat_nest(
    number: int, table: Table, names: Sequence[str], *, sizes: Mapping[str, int], first: int
) -> tuple[str, list[Any], list[_Slot]]:
    """The struct format, the header values and the value slots of a nest of attributes of known sizes: what
    ``_encoder`` writes for them, attribute by attribute. ``sizes``: the bytes of each address, and of each name
    (its NUL included); ``first``: the index of the nest's first value. A name's value is its bytes; the flags'
    value is the flags, sent with the mask ``ALL_FLAGS``."""
    codes: list[str] = ["HH"]
    constants: list[Any] = [0, number]
    slots: list[_Slot] = []
    for index, name in enumerate(names, start=first):
        attribute, kind = table[name]
        convert: Callable[[Any], Any] | None = None
        extra: list[Any] = []
        if kind in (ADDRESS, NAME):
            size = sizes[name]
            code = f"{size}s"
            convert = _packed_address if kind == ADDRESS else None
        elif kind == FLAGS:
            code, size, extra = "II", _FLAGS.size, [ALL_FLAGS]
        elif kind == DOTTED:
            code, size, convert = "4s", 4, _dotted
        elif kind in NUMBER_FORMATS:
            code = NUMBER_FORMATS[kind].lstrip("=<>")
            size = struct.calcsize(code)
            convert = _swapped if kind == BE16 else None
        else:
            raise WireFormatError(f"{name}: a {kind} has no fixed size")
        codes.append(f"HH{code}{-size % 4}x")
        constants += [ATTRIBUTE.size + size, attribute]
        slots.append((len(constants), index, convert))
        constants += [None, *extra]
    constants[0] = struct.calcsize("=" + "".join(codes))  # the nest's length
    return "".join(codes), constants, slots


class OperationMessages:
    """The messages of operations, each straight to bytes: real servers (added, edited, deleted) and services
    (added, edited) through one struct per shape, compiled from the attribute tables (what ``_encoder`` writes
    for the attributes ``codec`` sends, in its order), a service's deletion through ``request_for`` and
    ``encode_request``.

    An apply of 10,000 services x 3 sends 40,000 operations: building their attribute lists and encoding them
    attribute by attribute was most of the apply's own time. ``tests/contract/test_ipvs_fast_paths.py`` checks
    any operation's message against the full encoding's.
    """

    __slots__ = ("_family_id", "_flats")

    def __init__(self, *, family_id: int) -> None:
        self._family_id = family_id
        self._flats: dict[tuple[int, bool, int, int, int, int], _Flat] = {}

    def message(self, operation: Operation, *, flags: int, seq: int) -> bytes:
        """The message that performs ``operation`` (check ``encoding_problem`` first)."""
        command = _COMMANDS.get(type(operation))
        if command is None:
            return self._full(operation, flags=flags, seq=seq)
        if isinstance(operation, _ServiceOperation):
            key = operation.service.key
            scheduler, service_flags, timeout, netmask, pe_name = settings_values(operation.service)
            names = (scheduler.encode(), pe_name.encode())
            values = [flags, seq, *service_key_values(key), names[0], service_flags, timeout, netmask, names[1]]
            other = 0  # the names' sizes are the shape
            sizes = (len(names[0]), len(names[1]))
        elif isinstance(operation, _RealServerOperation):
            key, real = operation.service, operation.real
            full = command != CMD_DEL_DEST
            values = [flags, seq, *service_key_values(key), *dest_values(real, full=full)]
            other = 16 if ":" in real.address else 4
            sizes = (0, 0)
        else:  # not in _COMMANDS
            return self._full(operation, flags=flags, seq=seq)
        shape = (command, key.is_fwmark, 16 if ":" in key.address else 4, other, *sizes)
        flat = self._flats.get(shape)
        if flat is None:
            flat = self._flats[shape] = self._compile(shape)
        packer, constants, slots = flat
        arguments = constants[:]
        try:
            for position, index, convert in slots:
                value = values[index]
                arguments[position] = value if convert is None else convert(value)
            return packer.pack(*arguments)
        except (struct.error, OSError, TypeError, UnicodeError):  # refused by the full encoding in its own words
            return self._full(operation, flags=flags, seq=seq)

    def _full(self, operation: Operation, *, flags: int, seq: int) -> bytes:
        return encode_request(request_for(operation), family_id=self._family_id, flags=flags, seq=seq)

    def _compile(self, shape: tuple[int, bool, int, int, int, int]) -> _Flat:
        command, fwmark, key_size, real_size, scheduler_size, pe_size = shape
        key_names = FWMARK_KEY_SENT if fwmark else SERVICE_KEY_SENT
        nests: list[tuple[str, tuple[str, ...], dict[str, int]]] = []
        if command in (CMD_NEW_SERVICE, CMD_SET_SERVICE):
            names = (*key_names, *SETTINGS_SENT)
            name_sizes = {"IPVS_SVC_ATTR_SCHED_NAME": scheduler_size + 1, "IPVS_SVC_ATTR_PE_NAME": pe_size + 1}
            nests.append(("IPVS_CMD_ATTR_SERVICE", names, {"IPVS_SVC_ATTR_ADDR": key_size, **name_sizes}))
        else:
            nests.append(("IPVS_CMD_ATTR_SERVICE", key_names, {"IPVS_SVC_ATTR_ADDR": key_size}))
            dest_names = DEST_KEY_SENT if command == CMD_DEL_DEST else DEST_SENT
            nests.append(("IPVS_CMD_ATTR_DEST", dest_names, {"IPVS_DEST_ATTR_ADDR": real_size}))
        # nlmsghdr (length, type, flags, seq, port id), genlmsghdr (command, version, 0), then the nests.
        formats = [HEADER.format.lstrip("=") + GENL_HEADER.format.lstrip("=")]
        constants: list[Any] = [0, self._family_id, None, None, 0, command, GENL_VERSION, 0]
        slots: list[_Slot] = [(2, 0, None), (3, 1, None)]
        first = 2
        for nest, names, sizes in nests:
            code, values, nest_slots = _flat_nest(
                COMMAND_ATTRIBUTES[nest][0], NESTS[nest], names, sizes=sizes, first=first
            )
            slots += [(position + len(constants), index, convert) for position, index, convert in nest_slots]
            formats.append(code)
            constants += values
            first += len(names)
        packer = struct.Struct("=" + "".join(formats))
        constants[0] = packer.size
        return packer, constants, tuple(slots)


# --- decoding -----------------------------------------------------------------------------------------

_Field = tuple[str, str, struct.Struct | None, int]
"""name, kind, reader of a fixed-size value (None for the others), least payload size."""


def _fields(table: Table, *, only: frozenset[str] | None = None) -> Mapping[int, _Field]:
    fields: dict[int, _Field] = {}
    for name, (number, kind) in table.items():
        if only is None or name in only:
            reader = struct.Struct(_READ_FORMATS[kind]) if kind in _READ_FORMATS else None
            fields[number] = (name, kind, reader, 0 if reader is None else reader.size)
    return fields


def _read(fields: Mapping[int, _Field], data: Buffer, offset: int, end: int) -> dict[str, Any]:
    """The known attributes between offset and end (nests and addresses as their (start, stop) span).

    Stops once every field is read: the stats counters wanted come first in the kernel's order."""
    attributes: dict[str, Any] = {}
    wanted = len(fields)
    while end - offset >= 4:
        length, number = ATTRIBUTE.unpack_from(data, offset)
        stop = offset + length
        if length < 4 or stop > end:
            raise WireFormatError(f"netlink attribute of length {length} at offset {offset} overruns {end}")
        field = fields.get(number & ATTRIBUTE_TYPE_MASK)
        if field is not None:
            name, kind, reader, size = field
            if length - 4 < size:
                raise WireFormatError(f"{name}: {length - 4} bytes, {kind} needs {size}")
            if reader is not None:
                value = reader.unpack_from(data, offset + 4)[0]
                attributes[name] = inet_ntop(AF_INET, value) if kind == DOTTED else value
            elif kind == NAME:
                attributes[name] = bytes(data[offset + 4 : stop]).strip(b"\0").decode("utf-8", "replace")
            else:
                attributes[name] = (offset + 4, stop)
            if len(attributes) == wanted:
                break
        offset += aligned(length)
    return attributes


def _address(attributes: dict[str, Any], name: str, data: Buffer) -> None:
    """Replace the span of an address by its text, in the family its sibling attribute gives."""
    span = attributes.get(name)
    if span is None:
        return
    family: int = attributes.get(FAMILY_OF[name], 0)
    size = ADDRESS_SIZES.get(family)
    start, stop = span
    if size is None or stop - start < size:
        raise WireFormatError(f"{name}: {stop - start} bytes in address family {family}")
    attributes[name] = inet_ntop(family, data[start : start + size])


def _nested(payload: Buffer, nest: str, *, fields: Mapping[int, _Field] | None = None) -> dict[str, Any]:
    """The attributes of a top-level nest of a generic-netlink payload (spans index the payload); only ``fields``
    when given."""
    span = _read(_TOP_FIELDS, payload, GENL_HEADER.size, len(payload)).get(nest)
    if span is None:
        raise WireFormatError(f"reply without {nest}")
    return _read(_NEST_FIELDS[nest] if fields is None else fields, payload, *span)


_TOP_FIELDS = _fields(COMMAND_ATTRIBUTES)
_TIMEOUT_FIELDS = _fields(COMMAND_ATTRIBUTES, only=frozenset(TIMEOUT_ATTRIBUTES))
_NEST_FIELDS = {nest: _fields(NESTS[nest]) for nest in ("IPVS_CMD_ATTR_SERVICE", "IPVS_CMD_ATTR_DEST")}
_STATS_FIELDS = {name: _fields(NESTS[name], only=frozenset(STATS_COUNTERS)) for name in DEST_STATS_NESTS}
_STATS = DEST_STATS_NESTS[-1]


def decode_service_reply(payload: Buffer) -> dict[str, object]:
    """The attributes of the IPVS_CMD_ATTR_SERVICE of a reply, as ``codec.decode_service`` reads them."""
    attributes = _nested(payload, "IPVS_CMD_ATTR_SERVICE")
    attributes.pop("IPVS_SVC_ATTR_STATS", None)
    attributes.pop("IPVS_SVC_ATTR_STATS64", None)
    _address(attributes, "IPVS_SVC_ATTR_ADDR", payload)
    return attributes


def decode_dest_reply(payload: Buffer) -> dict[str, object]:
    """The attributes of the IPVS_CMD_ATTR_DEST of a reply, with the counters of ``STATS_COUNTERS`` from the
    preferred stats nest (``DEST_STATS_NESTS``) under ``IPVS_DEST_ATTR_STATS``."""
    attributes = _nested(payload, "IPVS_CMD_ATTR_DEST")
    spans = {name: attributes.pop(name, None) for name in _STATS_FIELDS}
    for name, fields in _STATS_FIELDS.items():
        span = spans[name]
        if span is not None:
            attributes[_STATS] = _read(fields, payload, *span)
            break
    _address(attributes, "IPVS_DEST_ATTR_ADDR", payload)
    return attributes


_TRAFFIC_FIELDS = {
    name: _fields(NESTS[name], only=frozenset(TRAFFIC_COUNTERS)) for name in (*SERVICE_STATS_NESTS, *DEST_STATS_NESTS)
}
# What a stats dump needs of a destination: its key, connection counts and stats (weights and the like are not).
_DEST_TRAFFIC_FIELDS = _fields(
    NESTS["IPVS_CMD_ATTR_DEST"],
    only=frozenset(
        {
            "IPVS_DEST_ATTR_ADDR",
            "IPVS_DEST_ATTR_PORT",
            "IPVS_DEST_ATTR_ADDR_FAMILY",
            "IPVS_DEST_ATTR_ACTIVE_CONNS",
            "IPVS_DEST_ATTR_INACT_CONNS",
            "IPVS_DEST_ATTR_PERSIST_CONNS",
            *DEST_STATS_NESTS,
        }
    ),
)


def _traffic(attributes: dict[str, Any], payload: Buffer, nests: Sequence[str]) -> None:
    """Every counter and rate of the preferred stats nest of ``nests`` under ``TRAFFIC`` (empty if none came)."""
    spans = {name: attributes.pop(name, None) for name in nests}
    attributes[TRAFFIC] = next(
        (_read(_TRAFFIC_FIELDS[name], payload, *span) for name in nests if (span := spans[name]) is not None), {}
    )


def decode_service_traffic_reply(payload: Buffer) -> dict[str, object]:
    """A service reply's attributes with its counters and rates under ``TRAFFIC`` (a stats dump)."""
    attributes = _nested(payload, "IPVS_CMD_ATTR_SERVICE")
    _traffic(attributes, payload, SERVICE_STATS_NESTS)
    _address(attributes, "IPVS_SVC_ATTR_ADDR", payload)
    return attributes


def decode_dest_traffic_reply(payload: Buffer) -> dict[str, object]:
    """A destination reply's key attributes and connection counts, with its counters and rates under ``TRAFFIC``
    (a stats dump)."""
    attributes = _nested(payload, "IPVS_CMD_ATTR_DEST", fields=_DEST_TRAFFIC_FIELDS)
    _traffic(attributes, payload, DEST_STATS_NESTS)
    _address(attributes, "IPVS_DEST_ATTR_ADDR", payload)
    return attributes


def decode_timeouts_reply(payload: Buffer) -> dict[str, object]:
    """The timeout attributes of a GET_CONFIG reply (top level, u32 seconds), as ``codec.decode_timeouts`` reads
    them."""
    return _read(_TIMEOUT_FIELDS, payload, GENL_HEADER.size, len(payload))
