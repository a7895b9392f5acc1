"""The fast paths of the save-file and connection-table parsers read every line as the general path does.

A save line written with two spaces between its tokens means the same to ipvsadm and to ``parse_save``, but
only single-spaced lines take the fast path (a regular expression): so a text and its double-spaced copy
must give the same table, or the same error. The connection table keeps its own rules per column.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings

from ipvsctl.conntable import parse_connections
from ipvsctl.errors import SaveFormatError
from ipvsctl.ipvsadm import parse_save, write_save
from ipvsctl.model import Table
from tests.strategies import hostile_text, tables

SAVE = """\
-A -t 203.0.113.10:80 -s rr
-a -t 203.0.113.10:80 -r 198.51.100.10:8080 -m -w 1
-a -t 203.0.113.10:80 -r 198.51.100.11:8080 -g -w 65535
-A -u [2001:db8::10]:53 -s wlc
-a -u [2001:db8::10]:53 -r [2001:db8::20]:53 -m -w 0
"""
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def double_spaced(text: str) -> str:
    """``text`` with every run of spaces doubled: the same save to ipvsadm, but never the fast path's form."""
    return re.sub(r" +", lambda run: run[0] * 2, text)


def outcome(text: str) -> Table | tuple[str, int]:
    """The table parsed from ``text``, or the error's message and line number."""
    try:
        return parse_save(text)
    except SaveFormatError as error:
        return error.message, error.line_number


@PROPERTY
@given(tables(thresholds=False, max_services=6))
def test_any_saved_table_reads_the_same_on_both_paths(table: Table) -> None:
    """write_save's own output (mostly fast lines) and its double-spaced copy (general lines) give one table."""
    text = write_save(table)
    assert outcome(text) == outcome(double_spaced(text)) == table


@PROPERTY
@given(hostile_text(SAVE))
def test_any_text_gives_the_same_table_or_error_on_both_paths(text: str) -> None:
    """Hostile variations of usual lines: the fast path answers exactly what the general path answers."""
    assert outcome(text) == outcome(double_spaced(text))


def test_usual_lines_are_read() -> None:
    """The usual lines give their services, schedulers, forwarding methods and weights."""
    table = parse_save(SAVE)
    assert [
        (str(vs.key), vs.scheduler, [(str(r.key), r.forwarding.name, r.weight) for r in vs.reals]) for vs in table
    ] == [
        ("tcp/203.0.113.10:80", "rr", [("198.51.100.10:8080", "MASQ", 1), ("198.51.100.11:8080", "ROUTE", 65535)]),
        ("udp/[2001:db8::10]:53", "wlc", [("[2001:db8::20]:53", "MASQ", 0)]),
    ]


def test_real_server_of_an_undeclared_service_is_still_an_error() -> None:
    """A usual real-server line before its service: the general path's error, with its line."""
    text = "-a -t 203.0.113.10:80 -r 198.51.100.10:8080 -m -w 1\n"
    assert outcome(text) == ("real server for undeclared virtual service tcp/203.0.113.10:80", 1)


CONN_HEADER = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"


def test_repeated_addresses_are_read_alike() -> None:
    """Addresses remembered from earlier lines give the same canonical text as when first read."""
    line = "TCP C0000202 {port:04X} CB00710A 0050 C6336402 1F90 ESTABLISHED     295\n"
    text = CONN_HEADER + "".join(line.format(port=port) for port in range(1, 4))
    connections = parse_connections(text)
    assert {(c.client_address, c.virtual_address, c.real_address) for c in connections} == {
        ("192.0.2.2", "203.0.113.10", "198.51.100.2")
    }
