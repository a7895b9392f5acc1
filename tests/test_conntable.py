"""The /proc/net/ip_vs_conn and ip_vs_conn_sync text: entries, templates, families, and every malformed line."""

from __future__ import annotations

import pytest

from ipvsctl.conntable import Connection, ConnectionProtocol, ConnTableError, Origin, parse_connections
from ipvsctl.model import Protocol, ServiceKey

HEADER = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData"
SYNC_HEADER = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires"

# The kernel lab's capture: a /32 template for 192.0.2.2 and the connection it pinned, now in TIME_WAIT.
LAB_TEMPLATE = "TCP C0000202 0000 CB00710A 0050 C6336402 1F90 ASSURED         295"
LAB_CONNECTION = "TCP C0000202 C822 CB00710A 0050 C6336402 1F90 TIME_WAIT       115"
V6_TEMPLATE = (
    "TCP 2001:0db8:0001:0000:0000:0000:0000:0000 0000 2001:0db8:0000:0000:0000:0000:0000:0010 0050 "
    "2001:0db8:0002:0000:0000:0000:0000:0011 1F90 NONE          10790"
)
FWMARK_TEMPLATE = "IP  C0000209 0000 00000007 0000 C6336404 0000 ASSURED         598"
FWMARK6_TEMPLATE = (
    "IP  2001:0db8:0001:0000:0000:0000:0000:0000 0000 0000:0009:0000:0000:0000:0000:0000:0000 0000 "
    "2001:0db8:0002:0000:0000:0000:0000:0011 0000 NONE            600"
)


def conn(*lines: str) -> str:
    """ip_vs_conn text: the header, then the lines."""
    return "\n".join((HEADER, *lines)) + "\n"


def sync(*lines: str) -> str:
    """ip_vs_conn_sync text: the header, then the lines."""
    return "\n".join((SYNC_HEADER, *lines)) + "\n"


def only(text: str) -> Connection:
    """The single entry of a text."""
    (connection,) = parse_connections(text)
    return connection


def test_lab_template_parses_to_canonical_fields() -> None:
    """The lab's hex fields become canonical addresses, decimal ports and seconds."""
    template = only(conn(LAB_TEMPLATE))
    assert (template.protocol, template.client_address, template.client_port) == (
        ConnectionProtocol.TCP,
        "192.0.2.2",
        0,
    )
    assert (template.virtual_address, template.virtual_port) == ("203.0.113.10", 80)
    assert (template.real_address, template.real_port) == ("198.51.100.2", 8080)
    assert (template.state, template.expires, template.pe_name, template.pe_data) == ("ASSURED", 295, "", "")
    assert template.origin is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [(LAB_TEMPLATE, True), (LAB_CONNECTION, False), (FWMARK_TEMPLATE, True)],
    ids=["client-port-0", "client-port-51234", "fwmark-template"],
)
def test_template_is_an_entry_with_client_port_zero(line: str, expected: bool) -> None:
    """is_template follows the client port: templates are created with port 0."""
    assert only(conn(line)).is_template is expected


def test_ipv6_addresses_written_in_full_become_canonical() -> None:
    """%pI6 output (eight groups of four) is compressed."""
    template = only(conn(V6_TEMPLATE))
    assert (template.client_address, template.virtual_address, template.real_address) == (
        "2001:db8:1::",
        "2001:db8::10",
        "2001:db8:2::11",
    )
    assert (template.family, template.expires) == (6, 10790)


def test_real_server_may_be_of_another_family() -> None:
    """DestIP follows the real server's family, so an IPv6 service may show an IPv4 destination."""
    line = (
        "TCP 2001:0db8:0001:0000:0000:0000:0000:0000 0000 2001:0db8:0000:0000:0000:0000:0000:0010 0050 "
        "C6336402 1F90 NONE            300"
    )
    assert only(conn(line)).real_address == "198.51.100.2"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (LAB_TEMPLATE, ServiceKey(Protocol.TCP, "203.0.113.10", 80)),
        (
            "UDP C0000200 0000 CB007135 0035 C6336406 0035 UDP             290",
            ServiceKey(Protocol.UDP, "203.0.113.53", 53),
        ),
        (
            "SCTP C0000200 0000 CB00710A 0F1C C6336402 0F1C NONE           280",
            ServiceKey(Protocol.SCTP, "203.0.113.10", 3868),
        ),
        (FWMARK_TEMPLATE, ServiceKey.fwmark(7)),
        (FWMARK6_TEMPLATE, ServiceKey.fwmark(9, family=6)),
    ],
    ids=["tcp", "udp", "sctp", "fwmark-v4", "fwmark-v6"],
)
def test_virtual_service_names_the_key_the_template_belongs_to(line: str, expected: ServiceKey) -> None:
    """Protocol, VIP and port give the key; protocol IP carries the mark in the first 32 bits of the VIP."""
    assert only(conn(line)).virtual_service == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [(FWMARK_TEMPLATE, 7), (FWMARK6_TEMPLATE, 9), (LAB_TEMPLATE, None)],
    ids=["v4", "v6", "not-fwmark"],
)
def test_fwmark_is_read_from_the_virtual_address(line: str, expected: int | None) -> None:
    """Only protocol IP entries carry a mark."""
    assert only(conn(line)).fwmark == expected


def test_persistence_engine_columns_are_read() -> None:
    """PEName and the rest of the line as PEData appear for entries of a persistence engine."""
    template = only(conn(LAB_TEMPLATE + " sip a84b4c76e66710@pc33.example.com"))
    assert (template.pe_name, template.pe_data) == ("sip", "a84b4c76e66710@pc33.example.com")


@pytest.mark.parametrize(
    ("origin", "expected"), [("LOCAL", Origin.LOCAL), ("SYNC ", Origin.SYNC)], ids=["local", "sync"]
)
def test_sync_file_carries_the_origin(origin: str, expected: Origin) -> None:
    """ip_vs_conn_sync has Origin before Expires and no PE columns."""
    line = f"TCP C0000202 0000 CB00710A 0050 C6336402 1F90 ASSURED     {origin}     295"
    entry = only(sync(line))
    assert (entry.origin, entry.expires, entry.is_template) == (expected, 295, True)


@pytest.mark.parametrize(
    "text",
    ["", HEADER + "\n", SYNC_HEADER + "\n", "\n" + HEADER + "\n\n"],
    ids=["empty", "conn-header", "sync-header", "blank-lines"],
)
def test_text_without_entries_is_empty(text: str) -> None:
    """No entries, only a header (of either file), or blank lines: nothing to report."""
    assert parse_connections(text) == ()


def test_entries_keep_their_order() -> None:
    """Entries come back in the order of the file, header skipped."""
    entries = parse_connections(conn(LAB_TEMPLATE, LAB_CONNECTION))
    assert [entry.client_port for entry in entries] == [0, 51234]


V4 = "C0000202 0000 CB00710A 0050 C6336402 1F90"


@pytest.mark.parametrize(
    ("text", "line_number", "message"),
    [
        (LAB_TEMPLATE + "\n", 1, "expected the header of /proc/net/ip_vs_conn or /proc/net/ip_vs_conn_sync"),
        (conn("TCP C0000202 0000 CB00710A 0050 C6336402 1F90 ASSURED"), 2, "expected at least 9 fields"),
        (sync(LAB_TEMPLATE), 2, "expected 10 fields"),
        (conn(f"ICMP {V4} NONE 5"), 2, "Pro: unknown protocol 'ICMP'"),
        (conn("TCP C00002 0000 CB00710A 0050 C6336402 1F90 NONE 5"), 2, "FromIP: 'C00002' is neither"),
        (conn("TCP C0000202 0000 2001:db8::10 0050 C6336402 1F90 NONE 5"), 2, "ToIP: '2001:db8::10' is neither"),
        (conn("TCP C0000202 0000 CB00710A 0050 C633640Z 1F90 NONE 5"), 2, "DestIP: 'C633640Z' is neither"),
        (conn("TCP C0000202 0050 CB00710A 50 C6336402 1F90 NONE 5"), 2, "TPrt: '50' is not a port in 4 hex digits"),
        (conn("TCP C0000202 GGGG CB00710A 0050 C6336402 1F90 NONE 5"), 2, "FPrt: 'GGGG' is not a port"),
        (conn(f"TCP {V4} NONE -1"), 2, "Expires: '-1' is not a whole number of seconds"),
        (
            conn("TCP C0000202 0000 2001:0db8:0000:0000:0000:0000:0000:0010 0050 C6336402 1F90 NONE 5"),
            2,
            "ToIP: the virtual address is not of the client address's family",
        ),
        (sync(f"TCP {V4} NONE REMOTE 5"), 2, "Origin: 'REMOTE' is neither LOCAL nor SYNC"),
        (conn(LAB_TEMPLATE, f"TCP {V4} NONE soon"), 3, "Expires: 'soon'"),
        (conn(f"TCP {V4} NONE {'9' * 5000}"), 2, "Expires: 5000 digits are more than a timer holds"),
        (conn(f"TCP {V4} NONE ²"), 2, "Expires: '²' is not a whole number of seconds"),
        (conn(f"TCP {V4} NONE \u0661\u0662"), 2, "Expires: '\u0661\u0662' is not a whole number of seconds"),
    ],
    ids=[
        "no-header",
        "too-few-fields",
        "sync-without-origin",
        "unknown-protocol",
        "short-ipv4",
        "compressed-ipv6",
        "bad-dest-hex",
        "short-port",
        "non-hex-port",
        "negative-expires",
        "family-mismatch",
        "unknown-origin",
        "later-line",
        "expires-5000-digits",
        "expires-superscript",
        "expires-arabic-indic",
    ],
)
def test_malformed_line_is_named_with_its_number(text: str, line_number: int, message: str) -> None:
    """Every malformed line raises ConnTableError with its line number and what is wrong."""
    with pytest.raises(ConnTableError, match=f"^line {line_number}: ") as caught:
        parse_connections(text)
    assert caught.value.line_number == line_number
    assert message in caught.value.message


def test_error_names_the_source() -> None:
    """A source replaces 'line' with 'source:number' and the offending line is quoted."""
    with pytest.raises(ConnTableError, match=r"^/proc/net/ip_vs_conn:2: Pro: unknown protocol 'GRE': 'GRE "):
        parse_connections(conn(f"GRE {V4} NONE 5"), source="/proc/net/ip_vs_conn")


def test_non_utf8_table_names_the_line() -> None:
    """Bytes that are not UTF-8 raise ConnTableError naming the line and the byte, not UnicodeDecodeError."""
    data = conn(LAB_TEMPLATE).encode() + b"TCP C0000202 C822 CB00710A 0050 C6336402 1F90 \xff 5\n"
    with pytest.raises(ConnTableError) as caught:
        parse_connections(data, source="/proc/net/ip_vs_conn")
    assert (caught.value.line_number, caught.value.message) == (3, "not UTF-8 text (byte 0xff at column 47)")


def test_utf8_table_bytes_parse_as_text() -> None:
    """Bytes that are UTF-8 parse exactly as the same text does."""
    assert parse_connections(conn(LAB_TEMPLATE).encode()) == parse_connections(conn(LAB_TEMPLATE))
