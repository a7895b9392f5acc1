"""The IPVS connection table as ``/proc/net/ip_vs_conn`` and ``/proc/net/ip_vs_conn_sync`` print it (pure).

Generic netlink cannot dump connections, so this text is the only view of persistence templates.
Facts of ``net/netfilter/ipvs/ip_vs_conn.c`` (``ip_vs_conn_seq_show``, ``ip_vs_conn_sync_seq_show``)
this parser follows:

- The first line is a header: ``Pro FromIP FPrt ToIP TPrt DestIP DPrt State Expires PEName PEData``, and
  for ``ip_vs_conn_sync`` ``Pro FromIP FPrt ToIP TPrt DestIP DPrt State Origin Expires`` (no PE columns).
- Each entry is ``%-3s`` protocol (``ip_vs_proto_name``: ``TCP``, ``UDP``, ``SCTP``, and ``IP`` for
  fwmark templates), then client (From), virtual (To) and real server (Dest) address and port,
  ``%-11s`` state, for the sync file ``%-6s`` origin (``LOCAL`` or ``SYNC``), and ``%7u`` expires.
- IPv4 addresses are ``%08X`` of the host-order value (``C0000202`` is 192.0.2.2); IPv6 ones are ``%pI6``,
  eight groups of four lowercase hex digits. From and To share the service's family; Dest has its own
  (a real server of another family behind a tunnel). Ports are ``%04X``.
- Expires is whole seconds left on the entry's timer (``jiffies_delta_to_msecs(...) / 1000``, never negative;
  kernels before that printed ``(expires - jiffies) / HZ`` with ``%lu``, which wraps when overdue).
- ``ip_vs_conn`` appends `` PEName PEData`` only for entries with persistence-engine data (sip's Call-ID).
- State names (``ip_vs_state_name``): templates ``NONE`` or ``ASSURED`` (``ip_vs_ctpl_state_name_table``;
  older kernels print state 0 of the protocol: ``NONE`` for TCP, SCTP and IP, ``UDP`` for UDP); TCP ``NONE
  ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT TIME_WAIT CLOSE CLOSE_WAIT LAST_ACK LISTEN SYNACK``; UDP ``UDP``;
  SCTP ``NONE INIT1 INIT C-SENT C-REPLIED C-WAIT COOKIE C-ECHOED ESTABLISHED S-SENT S-RECEIVED S-ACK-SENT
  REJECTED CLOSED``; ``ERR!``/``?`` for out-of-range values. States are kept as printed, not checked.

The template flag (``IP_VS_CONN_F_TEMPLATE``) is not printed. ``ip_vs_sched_persist`` (``ip_vs_core.c``)
creates every template with client port 0 and the client address masked by the service's netmask, so
``is_template`` means client port 0. The only other entries with client port 0 are ``IP_VS_CONN_F_NO_CPORT``
ones (the FTP helper's passive data connections, synced entries not yet seen), absent from Kubernetes tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from ipvsctl.errors import ConnTableError
from ipvsctl.model import Protocol, ServiceKey, canonical_ip, family_of, packed_address
from ipvsctl.numbers import parse_decimal

__all__ = [
    "CONN_COLUMNS",
    "SYNC_COLUMNS",
    "ConnTableError",
    "Connection",
    "ConnectionProtocol",
    "Origin",
    "parse_connections",
]

CONN_COLUMNS = ("Pro", "FromIP", "FPrt", "ToIP", "TPrt", "DestIP", "DPrt", "State", "Expires", "PEName", "PEData")
SYNC_COLUMNS = ("Pro", "FromIP", "FPrt", "ToIP", "TPrt", "DestIP", "DPrt", "State", "Origin", "Expires")

_IPV4 = re.compile(r"[0-9A-Fa-f]{8}")
_IPV6 = re.compile(r"[0-9A-Fa-f]{4}(?::[0-9A-Fa-f]{4}){7}")
_PORT = re.compile(r"[0-9A-Fa-f]{4}")
_SECONDS = re.compile(r"[0-9]+")
_MAX_SECONDS_DIGITS = 20  # %lu of a 64-bit long: what kernels before jiffies_delta_to_msecs printed
_KNOWN_ADDRESSES = 65_536  # addresses remembered per parse (a table of many clients repeats fewer of them)


class ConnectionProtocol(StrEnum):
    """Protocol column as the kernel names it; ``IP`` marks a fwmark service's template."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"
    IP = "IP"


_SERVICE_PROTOCOLS: Mapping[ConnectionProtocol, Protocol] = {
    ConnectionProtocol.TCP: Protocol.TCP,
    ConnectionProtocol.UDP: Protocol.UDP,
    ConnectionProtocol.SCTP: Protocol.SCTP,
    ConnectionProtocol.IP: Protocol.FWMARK,
}


class Origin(StrEnum):
    """Who created an entry (``ip_vs_conn_sync`` only): this node, or the sync daemon of a peer."""

    LOCAL = "LOCAL"
    SYNC = "SYNC"


@dataclass(frozen=True, slots=True)
class Connection:
    """One entry of the connection table: a connection, or a persistence template (client port 0).

    Addresses are canonical. For a fwmark template (protocol ``IP``) ``virtual_address`` holds the mark in
    its first 32 bits (``0.0.0.7``, ``0:7::``) and the virtual and real ports are 0.
    ``origin`` is None for ``ip_vs_conn`` lines, which do not carry it.
    """

    protocol: ConnectionProtocol
    client_address: str
    client_port: int
    virtual_address: str
    virtual_port: int
    real_address: str
    real_port: int
    state: str
    expires: int
    pe_name: str = ""
    pe_data: str = ""
    origin: Origin | None = None

    @property
    def is_template(self) -> bool:
        """True for a persistence template (see the module docstring for how exact this is)."""
        return self.client_port == 0

    @property
    def family(self) -> int:
        """Address family of the virtual service: 4 or 6."""
        return family_of(self.client_address)

    @property
    def fwmark(self) -> int | None:
        """The firewall mark of a fwmark template, else None."""
        if self.protocol is not ConnectionProtocol.IP:
            return None
        return int.from_bytes(packed_address(self.virtual_address)[:4], "big")

    @property
    def virtual_service(self) -> ServiceKey:
        """Key of the virtual service as the entry names it.

        The port is the entry's virtual port: a template of a port-21 service has port 0 (``FTPPORT``).
        """
        mark = self.fwmark
        if mark is not None:
            return ServiceKey.fwmark(mark, family=self.family)
        return ServiceKey(_SERVICE_PROTOCOLS[self.protocol], self.virtual_address, self.virtual_port)


def parse_connections(text: str | bytes | bytearray, *, source: str = "") -> tuple[Connection, ...]:
    """Parse either file's text (or bytes, which must be UTF-8); ConnTableError names the first bad line.

    The header decides the layout, so it is required unless the text is empty.
    """
    if not isinstance(text, str):
        text = ConnTableError.decode(text, source=source)
    columns: tuple[str, ...] | None = None
    connections: list[Connection] = []
    addresses: dict[str, str] = {}  # hex → canonical: a table repeats the same few VIPs and servers
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        if columns is None:
            columns = _header_columns(fields)
            if columns is None:
                message = "expected the header of /proc/net/ip_vs_conn or /proc/net/ip_vs_conn_sync"
                raise ConnTableError(message, line_number=number, line=raw, source=source)
            continue
        try:
            connections.append(_parse_line(raw, fields, is_sync=columns is SYNC_COLUMNS, addresses=addresses))
        except _MalformedError as error:
            raise ConnTableError(str(error), line_number=number, line=raw, source=source) from None
    return tuple(connections)


class _MalformedError(Exception):
    """A field of one line is wrong; parse_connections adds where."""


def _header_columns(fields: list[str]) -> tuple[str, ...] | None:
    for columns in (CONN_COLUMNS, SYNC_COLUMNS):
        if tuple(fields) == columns:
            return columns
    return None


_PROTOCOL_NAMES: Mapping[str, ConnectionProtocol] = {protocol.value: protocol for protocol in ConnectionProtocol}
_ORIGINS: Mapping[str, Origin] = {origin.value: origin for origin in Origin}
# Column positions: Pro FromIP FPrt ToIP TPrt DestIP DPrt State, then Expires (or Origin Expires) [PEName PEData].
_PRO, _FROM, _FPRT, _TO, _TPRT, _DEST, _DPRT, _STATE = range(8)


def _parse_line(raw: str, fields: list[str], *, is_sync: bool, addresses: dict[str, str]) -> Connection:
    if is_sync and len(fields) != len(SYNC_COLUMNS):
        raise _MalformedError(f"expected {len(SYNC_COLUMNS)} fields ({' '.join(SYNC_COLUMNS)}), got {len(fields)}")
    if not is_sync and len(fields) < len(CONN_COLUMNS) - 2:
        expected = f"at least {len(CONN_COLUMNS) - 2} fields ({' '.join(CONN_COLUMNS[:-2])} [PEName PEData])"
        raise _MalformedError(f"expected {expected}, got {len(fields)}")
    protocol = _PROTOCOL_NAMES.get(fields[_PRO])
    if protocol is None:
        raise _MalformedError(f"Pro: unknown protocol {fields[_PRO]!r}")
    client = _address(fields[_FROM], "FromIP", addresses)
    virtual = _address(fields[_TO], "ToIP", addresses)
    if (":" in client) != (":" in virtual):
        raise _MalformedError("ToIP: the virtual address is not of the client address's family")
    origin = None
    pe_name = pe_data = ""
    if is_sync:
        origin = _ORIGINS.get(fields[8])
        if origin is None:
            raise _MalformedError(f"Origin: {fields[8]!r} is neither LOCAL nor SYNC")
        expires = fields[9]
    else:
        expires = fields[8]
        if len(fields) > 9:
            pe_name = fields[9]
        if len(fields) > 10:
            # PEData is the rest of the line: the kernel prints a persistence engine's data as it is.
            pe_data = raw.split(maxsplit=len(CONN_COLUMNS) - 1)[-1].rstrip()
    return Connection(
        protocol=protocol,
        client_address=client,
        client_port=_port(fields[_FPRT], "FPrt"),
        virtual_address=virtual,
        virtual_port=_port(fields[_TPRT], "TPrt"),
        real_address=_address(fields[_DEST], "DestIP", addresses),
        real_port=_port(fields[_DPRT], "DPrt"),
        state=fields[_STATE],
        expires=_seconds(expires, "Expires"),
        pe_name=pe_name,
        pe_data=pe_data,
        origin=origin,
    )


def _address(text: str, column: str, known: dict[str, str]) -> str:
    address = known.get(text)
    if address is not None:
        return address
    if _IPV4.fullmatch(text):
        value = int(text, 16)
        address = f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
    elif _IPV6.fullmatch(text):
        address = canonical_ip(text)
    else:
        raise _MalformedError(f"{column}: {text!r} is neither 8 hex digits (IPv4) nor 8 groups of 4 (IPv6)")
    if len(known) < _KNOWN_ADDRESSES:
        known[text] = address
    return address


def _port(text: str, column: str) -> int:
    if not _PORT.fullmatch(text):
        raise _MalformedError(f"{column}: {text!r} is not a port in 4 hex digits")
    return int(text, 16)


def _seconds(text: str, column: str) -> int:
    seconds = parse_decimal(text, max_digits=_MAX_SECONDS_DIGITS)
    if seconds is not None:
        return seconds
    if _SECONDS.fullmatch(text):
        raise _MalformedError(f"{column}: {len(text)} digits are more than a timer holds")
    raise _MalformedError(f"{column}: {text!r} is not a whole number of seconds")
