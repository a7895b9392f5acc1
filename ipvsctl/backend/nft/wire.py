"""nf_tables set elements ⇄ netlink bytes (``include/uapi/linux/netfilter/nf_tables.h``, ``nfnetlink.h``); pure.

Only what the agent changes often goes over netlink: elements of the sets of ``ipvsctl.netfilter``
(added, deleted, dumped). The table itself (its sets and chains) is written with ``nft -f``
(``ruleset.py``), which happens at start-up and when the table was changed behind the agent's back.

An nftables change is a transaction: ``NFNL_MSG_BATCH_BEGIN``, the messages, ``NFNL_MSG_BATCH_END``; the
kernel applies all of it or none (one failing message aborts the batch). A key is the concatenation of its
fields, each padded to 4 bytes (nf_tables registers are 32 bits): an IPv4 address 4 bytes, an IPv6 one 16,
the protocol one byte, a port two bytes in network order. A range of a concatenation (a source range of
``allowed``) is the key of its first and of its last value (``NFTA_SET_ELEM_KEY_END``).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache
from itertools import product
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Final

from ipvsctl.backend.netlink.message import (
    ATTRIBUTE,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    Buffer,
    WireFormatError,
    attribute,
    iter_attributes,
    message,
)
from ipvsctl.netfilter.elements import Kind, Value

__all__ = [
    "ELEMENTS_PER_MESSAGE",
    "NETLINK_NETFILTER",
    "NFGENMSG_SIZE",
    "NFPROTO_INET",
    "batch_begin",
    "batch_end",
    "chunks",
    "decode_elements",
    "definition_dump_request",
    "dump_request",
    "element_message",
    "encode_element",
    "encode_fields",
    "plain_elements",
    "set_layout",
    "table_flags",
    "table_flags_message",
    "table_request",
    "walk_elements",
]

NETLINK_NETFILTER: Final = 12
NFPROTO_INET: Final = 1
NFNL_SUBSYS_NFTABLES: Final = 10
NFNL_MSG_BATCH_BEGIN: Final = 0x10
NFNL_MSG_BATCH_END: Final = 0x11
NFT_MSG_NEWTABLE: Final = 0
NFT_MSG_GETTABLE: Final = 1
NFT_TABLE_F_DORMANT: Final = 0x1
NFT_MSG_NEWSETELEM: Final = 12
NFT_MSG_GETSETELEM: Final = 13
NFT_MSG_DELSETELEM: Final = 14
ELEMENTS_PER_MESSAGE: Final = 256  # each message well under a page per 256 elements of the longest key

_NFGENMSG = struct.Struct("!BBH")  # family, version (NFNETLINK_V0), resource id (big-endian)
NFGENMSG_SIZE: Final = _NFGENMSG.size  # the header before a reply's attributes
_NESTED = 0x8000  # NLA_F_NESTED
_LIST_TABLE, _LIST_SET, _LIST_ELEMENTS = 1, 2, 3  # NFTA_SET_ELEM_LIST_*
_LIST_ELEM = 1  # NFTA_LIST_ELEM
_ELEM_KEY, _ELEM_KEY_END = 1, 10  # NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_KEY_END
_DATA_VALUE = 1  # NFTA_DATA_VALUE
_PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132}
_PROTOCOL_NAMES = {number: name for name, number in _PROTOCOLS.items()}

Field = str  # "addr", "proto", "port"
_FIELDS: dict[Kind, tuple[Field, ...]] = {
    Kind.VIPS: ("addr",),
    Kind.SERVICES: ("addr", "proto", "port"),
    Kind.MASQUERADE: ("addr", "proto", "port"),
    Kind.CLUSTER: ("addr", "proto", "port"),
    Kind.HAIRPIN: ("addr", "proto", "port", "addr"),
    Kind.RANGED: ("addr", "proto", "port"),
    Kind.ALLOWED: ("addr", "proto", "port", "addr"),
}


def set_layout(name: str) -> tuple[Kind, int, tuple[Field, ...]]:
    """A set's kind, family and key fields, from its name (``services4``); WireFormatError for another set."""
    family = 6 if name.endswith("6") else 4 if name.endswith("4") else 0
    try:
        kind = Kind(name[:-1])
        fields = _FIELDS[kind]
    except (ValueError, KeyError):
        raise WireFormatError(f"no elements of set {name!r} go over netlink") from None
    return kind, family, fields


def _family(family: int) -> int:
    return int(AF_INET6 if family == 6 else AF_INET)


def _key(fields: Sequence[Field], family: int, parts: Sequence[str | int]) -> bytes:
    """The padded concatenation of one key's fields."""
    if len(parts) != len(fields):
        raise WireFormatError(f"{len(parts)} values for a key of {len(fields)} fields: {parts!r}")
    out = bytearray()
    try:
        for field, part in zip(fields, parts, strict=True):
            if field == "addr":
                out += inet_pton(_family(family), str(part))
            elif field == "proto":
                out += bytes((_PROTOCOLS[str(part)], 0, 0, 0))
            else:
                out += struct.pack("!H2x", int(part))
    except (OSError, KeyError, ValueError, struct.error) as error:
        raise WireFormatError(f"cannot encode {parts!r} as a key of {fields}: {error}") from error
    return bytes(out)


def encode_element(name: str, value: Value) -> bytes:
    """One ``NFTA_LIST_ELEM`` of set ``name``: its key (and, for a source range, its key end).

    A value of the usual types goes through the set's precompiled struct (``_packer_of``): a table's 50,000
    elements were 4.5 s of a profiled lab ``apply`` field by field. Anything the struct does not take (another
    type, a bad value, a range) is encoded field by field (``encode_fields``), which also names what is wrong.
    """
    pack = _packer_of(name)
    if pack is not None:
        try:
            return pack(value)
        except (TypeError, ValueError, KeyError, OSError, struct.error):
            pass  # encode_fields refuses it with the reason, or takes what only it converts (a port as text)
    return encode_fields(name, value)


def encode_fields(name: str, value: Value) -> bytes:
    """``encode_element`` field by field: what the precompiled structs must equal."""
    kind, family, fields = set_layout(name)
    if kind.interval:
        if not value:
            raise WireFormatError(f"no values for a range of {fields}")
        *head, cidr = value
        try:
            network = ipaddress.ip_network(str(cidr), strict=False)
        except ValueError as error:
            raise WireFormatError(f"not a range: {cidr!r}") from error
        if network.version != family:
            raise WireFormatError(f"{cidr} is not an IPv{family} range")
        first = _key(fields, family, [*head, str(network.network_address)])
        last = _key(fields, family, [*head, str(network.broadcast_address)])
        body = _data(_ELEM_KEY, first) + _data(_ELEM_KEY_END, last)
    else:
        body = _data(_ELEM_KEY, _key(fields, family, value))
    return attribute(_LIST_ELEM | _NESTED, body)


_Packer = Callable[[Value], bytes]


@cache
def _packer_of(name: str) -> _Packer | None:
    """``encode_element`` of a single value of set ``name`` by one struct: the element's three headers (its
    lengths fixed by the key's) then the key's padded fields; None for a set of ranges."""
    kind, family, fields = set_layout(name)
    if kind.interval:
        return None
    field_formats = {"addr": "16s" if family == 6 else "4s", "proto": "B3x", "port": "H2x"}
    row = struct.Struct(">" + "".join(field_formats[field] for field in fields))
    header = (
        ATTRIBUTE.pack(row.size + 12, _LIST_ELEM | _NESTED)
        + ATTRIBUTE.pack(row.size + 8, _ELEM_KEY | _NESTED)
        + ATTRIBUTE.pack(row.size + 4, _DATA_VALUE)
    )
    af, protocols = _family(family), _PROTOCOLS
    # Each packer takes the usual types only: another one raises (TypeError, KeyError, struct.error), and
    # encode_element then goes field by field, as it does for a bad value.

    def address(value: Value) -> bytes:
        (text,) = value
        return header + row.pack(inet_pton(af, text))  # type: ignore[arg-type]

    def service(value: Value) -> bytes:
        text, protocol, port = value
        return header + row.pack(inet_pton(af, text), protocols[protocol], port)  # type: ignore[arg-type,index]

    def hairpin(value: Value) -> bytes:
        text, protocol, port, other = value
        key = row.pack(inet_pton(af, text), protocols[protocol], port, inet_pton(af, other))  # type: ignore[arg-type,index]
        return header + key

    shapes: dict[tuple[Field, ...], _Packer] = {
        ("addr",): address,
        ("addr", "proto", "port"): service,
        ("addr", "proto", "port", "addr"): hairpin,
    }
    return shapes.get(fields)


def _data(number: int, value: bytes) -> bytes:
    return attribute(number | _NESTED, attribute(_DATA_VALUE, value))


def _header(*, family: int, resource: int = 0) -> bytes:
    return _NFGENMSG.pack(family, 0, resource)


def batch_begin(seq: int, flags: int = 0) -> bytes:
    """The message that opens a transaction of nf_tables changes."""
    body = _header(family=0, resource=NFNL_SUBSYS_NFTABLES)
    return message(NFNL_MSG_BATCH_BEGIN, flags=NLM_F_REQUEST | flags, seq=seq, body=body)


def batch_end(seq: int, flags: int = 0) -> bytes:
    """The message that commits the transaction."""
    body = _header(family=0, resource=NFNL_SUBSYS_NFTABLES)
    return message(NFNL_MSG_BATCH_END, flags=NLM_F_REQUEST | flags, seq=seq, body=body)


def element_message(
    *, table: str, name: str, elements: Iterable[bytes], delete: bool, seq: int, flags: int = 0
) -> bytes:
    """A NEWSETELEM (or DELSETELEM) message of encoded elements (``encode_element``) of one set."""
    body = (
        _header(family=NFPROTO_INET)
        + attribute(_LIST_TABLE, table.encode() + b"\0")
        + attribute(_LIST_SET, name.encode() + b"\0")
        + attribute(_LIST_ELEMENTS | _NESTED, b"".join(elements))
    )
    kind = (NFNL_SUBSYS_NFTABLES << 8) | (NFT_MSG_DELSETELEM if delete else NFT_MSG_NEWSETELEM)
    return message(kind, flags=NLM_F_REQUEST | (0 if delete else NLM_F_CREATE) | flags, seq=seq, body=body)


_TABLE_NAME, _TABLE_FLAGS = 1, 2  # NFTA_TABLE_NAME, NFTA_TABLE_FLAGS
_BE32 = struct.Struct("!I")


def _table_named(table: str) -> bytes:
    """The body that names one inet table: nfgenmsg, then NFTA_TABLE_NAME."""
    return _header(family=NFPROTO_INET) + attribute(_TABLE_NAME, table.encode() + b"\0")


def table_flags_message(*, table: str, flags: int, seq: int, message_flags: int = 0) -> bytes:
    """A NEWTABLE message that sets an existing inet table's flags (0 wakes a dormant table).

    Without NLM_F_CREATE or NLM_F_EXCL it is an update: the kernel changes the flags of the table there.
    """
    body = _table_named(table) + attribute(_TABLE_FLAGS, _BE32.pack(flags))
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE
    return message(kind, flags=NLM_F_REQUEST | message_flags, seq=seq, body=body)


def table_request(*, table: str, seq: int, flags: int = 0) -> bytes:
    """A GETTABLE of one inet table by name (not a dump: no other table is read)."""
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE
    return message(kind, flags=NLM_F_REQUEST | flags, seq=seq, body=_table_named(table))


def table_flags(payload: Buffer) -> int:
    """The NFTA_TABLE_FLAGS of a NEWTABLE reply's payload (its nfgenmsg, then attributes); 0 when absent."""
    view = memoryview(payload)
    for number, start, stop in iter_attributes(view, NFGENMSG_SIZE, len(view)):
        if number == _TABLE_FLAGS:
            if stop - start != _BE32.size:
                raise WireFormatError(f"table flags of {stop - start} bytes, not {_BE32.size}")
            flags: int = _BE32.unpack_from(view, start)[0]
            return flags
    return 0


def dump_request(*, table: str, name: str, seq: int) -> bytes:
    """A GETSETELEM dump of every element of one set."""
    body = (
        _header(family=NFPROTO_INET)
        + attribute(_LIST_TABLE, table.encode() + b"\0")
        + attribute(_LIST_SET, name.encode() + b"\0")
    )
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM
    return message(kind, flags=NLM_F_REQUEST | NLM_F_DUMP, seq=seq, body=body)


def decode_elements(payload: Buffer, name: str) -> list[Value]:
    """The values of the elements in one dump reply of set ``name`` (after its nlmsghdr).

    Every element of a set has the same shape, so a run of them is read by one precompiled struct
    (``_rows_of``): 10x fewer Python steps than walking each element's attributes, which was the whole
    cost of reading the table (50,000 elements at 10,000 Services: 5 s of a lab ``diff``). A run with
    anything else in it (another attribute, a key of another length) is walked (``walk_elements``), so the
    answer is always the walk's.
    """
    data = memoryview(payload)
    values: list[Value] = []
    for number, start, stop in iter_attributes(data, _NFGENMSG.size, len(data)):
        if number == _LIST_ELEMENTS:
            run = plain_elements(data[start:stop], name)
            values.extend(run if run is not None else _walk_run(data, start, stop, name))
    return values


def plain_elements(run: Buffer, name: str) -> list[Value] | None:
    """The values of a run of elements of set ``name`` that hold nothing but their key, as the kernel dumps
    them (``nf_tables_fill_setelem``: NFTA_LIST_ELEM { NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE: key } }), read
    by one precompiled struct; None when the run holds anything else, or the set holds ranges."""
    rows = _rows_of(name)
    return None if rows is None else rows(memoryview(run))


def walk_elements(payload: Buffer, name: str) -> list[Value]:
    """``decode_elements`` by walking every attribute of every element: what the fast path must equal."""
    data = memoryview(payload)
    values: list[Value] = []
    for number, start, stop in iter_attributes(data, _NFGENMSG.size, len(data)):
        if number == _LIST_ELEMENTS:
            values.extend(_walk_run(data, start, stop, name))
    return values


def _walk_run(data: memoryview, start: int, stop: int, name: str) -> list[Value]:
    kind, family, fields = set_layout(name)
    return [
        _element_value(data, element_start, element_stop, kind=kind, family=family, fields=fields)
        for element, element_start, element_stop in iter_attributes(data, start, stop)
        if element == _LIST_ELEM
    ]


_TYPE_FLAGS: Final = (0, 0x8000, 0x4000, 0xC000)  # NLA_F_NESTED, NLA_F_NET_BYTEORDER: a walk ignores both
_PROTOCOL_OF: Final = tuple(_PROTOCOL_NAMES.get(number, str(number)) for number in range(256))
_Rows = Callable[[memoryview], list[Value] | None]


@cache
def _rows_of(name: str) -> _Rows | None:
    """``plain_elements`` of set ``name``: a plain element is three headers (12 bytes, their lengths fixed by
    the key's, any of their flag bits) and the key's padded fields. None for a set of ranges: its elements
    carry a key end too, and there are few of them."""
    kind, family, fields = set_layout(name)
    if kind.interval:
        return None
    field_formats = {"addr": "16s" if family == 6 else "4s", "proto": "B3x", "port": "H2x"}
    row = struct.Struct(">12s" + "".join(field_formats[field] for field in fields))
    key = row.size - 12
    headers = frozenset(
        ATTRIBUTE.pack(key + 12, _LIST_ELEM | outer)
        + ATTRIBUTE.pack(key + 8, _ELEM_KEY | middle)
        + ATTRIBUTE.pack(key + 4, _DATA_VALUE | inner)
        for outer, middle, inner in product(_TYPE_FLAGS, repeat=3)
    )
    af, protocol_of = _family(family), _PROTOCOL_OF

    def addresses(run: memoryview) -> list[Value] | None:
        values: list[Value] = []
        for header, address in row.iter_unpack(run):
            if header not in headers:
                return None
            values.append((inet_ntop(af, address),))
        return values

    def services(run: memoryview) -> list[Value] | None:
        values: list[Value] = []
        for header, address, protocol, port in row.iter_unpack(run):
            if header not in headers:
                return None
            values.append((inet_ntop(af, address), protocol_of[protocol], port))
        return values

    def hairpins(run: memoryview) -> list[Value] | None:
        values: list[Value] = []
        for header, address, protocol, port, other in row.iter_unpack(run):
            if header not in headers:
                return None
            text = inet_ntop(af, address)  # a pod's two addresses are one: inet_ntop once (half the time)
            values.append((text, protocol_of[protocol], port, text if other == address else inet_ntop(af, other)))
        return values

    shapes: dict[tuple[Field, ...], Callable[[memoryview], list[Value] | None]] = {
        ("addr",): addresses,
        ("addr", "proto", "port"): services,
        ("addr", "proto", "port", "addr"): hairpins,
    }
    decode = shapes.get(fields)
    if decode is None:
        return None

    def rows(run: memoryview) -> list[Value] | None:
        return None if len(run) % row.size else decode(run)

    return rows


def _element_value(
    data: memoryview, start: int, stop: int, *, kind: Kind, family: int, fields: Sequence[Field]
) -> Value:
    key: bytes | None = None
    key_end: bytes | None = None
    for number, value_start, value_stop in iter_attributes(data, start, stop):
        if number in (_ELEM_KEY, _ELEM_KEY_END):
            for inner, inner_start, inner_stop in iter_attributes(data, value_start, value_stop):
                if inner == _DATA_VALUE:
                    if number == _ELEM_KEY:
                        key = bytes(data[inner_start:inner_stop])
                    else:
                        key_end = bytes(data[inner_start:inner_stop])
    if key is None:
        raise WireFormatError("a set element without a key")
    parts = _parts(key, fields, family)
    if not kind.interval:
        return tuple(parts)
    if key_end is None:
        raise WireFormatError("a range element without its end")
    last = _parts(key_end, fields, family)
    if last[:-1] != parts[:-1]:
        raise WireFormatError(f"a range over more than its last field: {parts} to {last}")
    return (*parts[:-1], _cidr(str(parts[-1]), str(last[-1])))


def _parts(key: bytes, fields: Sequence[Field], family: int) -> list[str | int]:
    size = 16 if family == 6 else 4
    expected = sum(size if field == "addr" else 4 for field in fields)
    if expected != len(key):  # before any field is read: a short key would fail in inet_ntop or struct instead
        raise WireFormatError(f"a key of {len(key)} bytes for fields {fields} ({expected} expected)")
    parts: list[str | int] = []
    offset = 0
    for field in fields:
        if field == "addr":
            parts.append(inet_ntop(_family(family), key[offset : offset + size]))
            offset += size
        elif field == "proto":
            parts.append(_PROTOCOL_NAMES.get(key[offset], str(key[offset])))
            offset += 4
        else:
            parts.append(struct.unpack_from("!H", key, offset)[0])
            offset += 4
    return parts


def _cidr(first: str, last: str) -> str:
    """``192.0.2.0/24`` for the range it spans; ``first-last`` when it is no single prefix."""
    start, end = ipaddress.ip_address(first), ipaddress.ip_address(last)
    if int(end) < int(start):  # one family: both come from the set's own key layout
        raise WireFormatError(f"a range that ends ({last}) before it starts ({first})")
    networks = list(ipaddress.summarize_address_range(start, end))
    return str(networks[0]) if len(networks) == 1 else f"{first}-{last}"


def chunks(items: Sequence[bytes], size: int = ELEMENTS_PER_MESSAGE) -> Iterator[Sequence[bytes]]:
    """``items`` in runs of at most ``size`` (one message each)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


NFT_MSG_GETCHAIN: Final = 4
NFT_MSG_GETRULE: Final = 7
_TABLE_OF = 1  # NFTA_CHAIN_TABLE and NFTA_RULE_TABLE alike


def definition_dump_request(*, table: str, rules: bool, seq: int) -> bytes:
    """A dump of the chains (or the rules) of one inet table: together they are the table's definition."""
    body = _header(family=NFPROTO_INET) + attribute(_TABLE_OF, table.encode() + b"\0")
    kind = (NFNL_SUBSYS_NFTABLES << 8) | (NFT_MSG_GETRULE if rules else NFT_MSG_GETCHAIN)
    return message(kind, flags=NLM_F_REQUEST | NLM_F_DUMP, seq=seq, body=body)
