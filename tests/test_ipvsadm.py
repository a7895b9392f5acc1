"""ipvsadm 1.31 text formats: parsing and writing ``ipvsadm -Sn`` saves, rendering ``ipvsadm -R`` lines."""

from __future__ import annotations

import re

import pytest
from hypothesis import given

from ipvsctl.errors import SaveFormatError
from ipvsctl.ipvsadm import parse_save, render_restore, write_save
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    DeleteRealServer,
    DeleteVirtualService,
    EditRealServer,
    EditVirtualService,
    Forwarding,
    Operation,
    Persistence,
    Protocol,
    RealServer,
    ServiceKey,
    Table,
    VirtualService,
)
from tests.strategies import tables

TCP_80 = ServiceKey(Protocol.TCP, "192.0.2.10", 80)
TCP_443 = ServiceKey(Protocol.TCP, "192.0.2.20", 443)
TCP_8443 = ServiceKey(Protocol.TCP, "203.0.113.5", 8443)
UDP_53 = ServiceKey(Protocol.UDP, "192.0.2.10", 53)
SCTP_3868 = ServiceKey(Protocol.SCTP, "192.0.2.10", 3868)
MARK_7 = ServiceKey.fwmark(7)
TCP6_80 = ServiceKey(Protocol.TCP, "2001:db8::10", 80)
MARK6_9 = ServiceKey.fwmark(9, family=6)

# What ipvsadm -Sn prints for a table mixing families, protocols, schedulers and forwarding methods.
SAMPLE_SAVE = """\
-A -t 192.0.2.10:80 -s rr
-a -t 192.0.2.10:80 -r 198.51.100.11:8080 -m -w 1
-a -t 192.0.2.10:80 -r 198.51.100.12:8080 -m -w 0
-A -t 192.0.2.20:443 -s wlc -p 10800
-a -t 192.0.2.20:443 -r 198.51.100.21:443 -g -w 5
-A -t 203.0.113.5:8443 -s sh -p 600 -M 255.255.255.0 -b sh-fallback,sh-port
-a -t 203.0.113.5:8443 -r 198.51.100.31:8443 -i -w 1 --tun-type ipip
-A -u 192.0.2.10:53 -s lc -o
-a -u 192.0.2.10:53 -r 198.51.100.11:5353 -m -w 1
-A --sctp-service 192.0.2.10:3868 -s rr
-a --sctp-service 192.0.2.10:3868 -r 198.51.100.11:3868 -m -w 1
-A -f 7 -s wrr
-a -f 7 -r 198.51.100.41:0 -g -w 2
-A -t [2001:db8::10]:80 -s mh -p 300 -M 64 -b mh-port
-a -t [2001:db8::10]:80 -r [2001:db8:1::11]:8080 -m -w 1
-A -f 9 -6 -s rr -p 3600 --pe sip -o -b flag-1,flag-3
-a -f 9 -6 -r [2001:db8:1::42]:0 -m -w 3
"""

SAMPLE_TABLE = Table.of(
    [
        VirtualService(
            TCP_80,
            scheduler="rr",
            reals=(RealServer("198.51.100.11", 8080), RealServer("198.51.100.12", 8080, weight=0)),
        ),
        VirtualService(
            TCP_443,
            scheduler="wlc",
            persistence=Persistence(10800, 32),
            reals=(RealServer("198.51.100.21", 443, weight=5, forwarding=Forwarding.ROUTE),),
        ),
        VirtualService(
            TCP_8443,
            scheduler="sh",
            persistence=Persistence(600, 24),
            sched_flags=frozenset({"sh-fallback", "sh-port"}),
            reals=(RealServer("198.51.100.31", 8443, forwarding=Forwarding.TUNNEL),),
        ),
        VirtualService(UDP_53, scheduler="lc", one_packet=True, reals=(RealServer("198.51.100.11", 5353),)),
        VirtualService(SCTP_3868, scheduler="rr", reals=(RealServer("198.51.100.11", 3868),)),
        VirtualService(
            MARK_7,
            scheduler="wrr",
            reals=(RealServer("198.51.100.41", 0, weight=2, forwarding=Forwarding.ROUTE),),
        ),
        VirtualService(
            TCP6_80,
            scheduler="mh",
            persistence=Persistence(300, 64),
            sched_flags=frozenset({"mh-port"}),
            reals=(RealServer("2001:db8:1::11", 8080),),
        ),
        VirtualService(
            MARK6_9,
            scheduler="rr",
            persistence=Persistence(3600, 128),
            sched_flags=frozenset({"flag-1", "flag-3"}),
            one_packet=True,
            pe_name="sip",
            reals=(RealServer("2001:db8:1::42", 0, weight=3),),
        ),
    ]
)

HEADER = "-A -t 192.0.2.10:80 -s rr\n"
REAL = "-a -t 192.0.2.10:80 -r 198.51.100.1:80 -m -w 1\n"


def only_service(text: str) -> VirtualService:
    """The single virtual service a save holds."""
    (service,) = parse_save(text)
    return service


# --- parsing and writing -------------------------------------------------------------------------


def test_parse_realistic_save() -> None:
    """A save mixing families, protocols, fwmarks and every option parses into the expected table."""
    assert parse_save(SAMPLE_SAVE) == SAMPLE_TABLE


def test_write_realistic_table() -> None:
    """Writing the table prints exactly what ipvsadm -Sn printed."""
    assert write_save(SAMPLE_TABLE) == SAMPLE_SAVE


def test_empty_text_is_empty_table() -> None:
    """An empty save is an empty table."""
    assert parse_save("") == Table()


def test_empty_table_is_empty_text() -> None:
    """ipvsadm -Sn prints nothing for an empty table."""
    assert write_save(Table()) == ""


def test_comments_and_blank_lines_are_ignored() -> None:
    """Blank lines and # comments carry nothing."""
    text = "# saved by hand\n\n   \n" + HEADER + "  # the end\n"
    assert parse_save(text) == parse_save(HEADER)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("-A -t 192.0.2.10:80", VirtualService(TCP_80, scheduler="wlc"), id="default-scheduler-wlc"),
        pytest.param(
            "-A -t 192.0.2.10:80 -s rr -p",
            VirtualService(TCP_80, persistence=Persistence(360, 32)),
            id="bare-p-is-360s",
        ),
        pytest.param(
            "-A -t 192.0.2.10:80 -s rr -p -M 255.255.0.0",
            VirtualService(TCP_80, persistence=Persistence(360, 16)),
            id="bare-p-before-option",
        ),
        pytest.param(
            "-A -t [2001:db8::10]:80 -s rr -p 60",
            VirtualService(TCP6_80, persistence=Persistence(60, 128)),
            id="ipv6-default-netmask-128",
        ),
        pytest.param(
            "-A -t 192.0.2.10:0 -s rr -p 60 -M 0.0.0.0",
            VirtualService(ServiceKey(Protocol.TCP, "192.0.2.10", 0), persistence=Persistence(60, 0)),
            id="port-0-persistent",
        ),
        pytest.param(
            "-A -s sh -b flag-2,flag-1 -t 192.0.2.10:80",
            VirtualService(TCP_80, scheduler="sh", sched_flags=frozenset({"sh-fallback", "sh-port"})),
            id="flag-aliases-named-for-scheduler",
        ),
        pytest.param(
            "-A -f -2147483648 -s rr",
            VirtualService(ServiceKey.fwmark(2**31)),
            id="negative-fwmark-as-printed-by-d",
        ),
        pytest.param(
            "-A -f 4294967295 -s rr",
            VirtualService(ServiceKey.fwmark(2**32 - 1)),
            id="unsigned-fwmark",
        ),
        pytest.param(
            "-A -t [2001:0DB8:0::010]:80 -s rr",
            VirtualService(TCP6_80),
            id="address-made-canonical",
        ),
    ],
)
def test_parse_service_line(line: str, expected: VirtualService) -> None:
    """A service line's omitted options take ipvsadm's defaults and values are canonical."""
    assert only_service(line + "\n") == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            "-a -t 192.0.2.10:80 -r 198.51.100.1:80",
            RealServer("198.51.100.1", 80, weight=1, forwarding=Forwarding.ROUTE),
            id="default-forwarding-route-weight-1",
        ),
        pytest.param(
            "-a -t 192.0.2.10:80 -r 198.51.100.1:80 -m -w 2147483647 -x 100 -y 10",
            RealServer("198.51.100.1", 80, weight=2**31 - 1, upper_threshold=100, lower_threshold=10),
            id="thresholds-and-kernel-max-weight",
        ),
        pytest.param(
            "-a -t 192.0.2.10:80 -r [2001:db8::1]:80 -i -w 1 --tun-type ipip",
            RealServer("2001:db8::1", 80, forwarding=Forwarding.TUNNEL),
            id="tunnel-across-families",
        ),
    ],
)
def test_parse_real_server_line(line: str, expected: RealServer) -> None:
    """A real server line's omitted options take ipvsadm's defaults."""
    assert only_service(HEADER + line + "\n").reals == (expected,)


def test_save_drops_thresholds() -> None:
    """ipvsadm 1.31 does not save thresholds, so neither does write_save."""
    real = RealServer("198.51.100.1", 80, upper_threshold=100, lower_threshold=10)
    table = Table.of([VirtualService(TCP_80, reals=(real,))])
    assert write_save(table) == HEADER + REAL


def test_save_prints_high_fwmark_negative() -> None:
    """Marks above 2**31-1 come out signed, as ipvsadm's %d prints them."""
    table = Table.of([VirtualService(ServiceKey.fwmark(2**32 - 1, family=6))])
    assert write_save(table) == "-A -f -1 -6 -s rr\n"


def test_save_names_scheduler_flags_for_scheduler() -> None:
    """A flag bit is printed under the scheduler's own name for it."""
    table = Table.of([VirtualService(TCP_80, scheduler="mh", sched_flags=frozenset({"flag-1"}))])
    assert write_save(table) == "-A -t 192.0.2.10:80 -s mh -b mh-fallback\n"


def test_write_rejects_unsavable_service() -> None:
    """A service ipvsadm could neither hold nor print is a programming error."""
    table = Table.of([VirtualService(TCP_80, persistence=Persistence(0, 32))])
    with pytest.raises(ValueError, match="persistence timeout 0 out of range"):
        write_save(table)


@given(tables(thresholds=False))
def test_write_then_parse_round_trips(table: Table) -> None:
    """Parsing what write_save prints gives the same table back."""
    assert parse_save(write_save(table)) == table


@given(tables(thresholds=False))
def test_canonical_save_round_trips(table: Table) -> None:
    """A canonical save is printed back byte for byte."""
    text = write_save(table)
    assert write_save(parse_save(text)) == text


# --- malformed saves -----------------------------------------------------------------------------

MALFORMED = [
    pytest.param(
        "-a -t 192.0.2.99:80 -r 198.51.100.1:80 -m -w 1",
        "real server for undeclared virtual service tcp/192.0.2.99:80",
        id="undeclared-service",
    ),
    pytest.param("-A -t 192.0.2.10:80 -s wlc", "duplicate virtual service tcp/192.0.2.10:80", id="dup-service"),
    pytest.param(REAL + REAL.strip(), "duplicate real server 198.51.100.1:80 in tcp/192.0.2.10:80", id="dup-real"),
    pytest.param("-A -t 192.0.2.11:80 -s rr --frobnicate", "unknown option '--frobnicate'", id="unknown-option"),
    pytest.param(
        "-A --xxx-service 192.0.2.11:80 -s rr", "unknown protocol flag '--xxx-service'", id="unknown-protocol"
    ),
    pytest.param("-A -t 192.0.2.300:80 -s rr", "bad virtual service address '192.0.2.300'", id="bad-address"),
    pytest.param(
        "-A -t 2001:db8::1:80 -s rr",
        "bad virtual service address '2001:db8::1' (IPv6 goes in brackets)",
        id="ipv6-unbracketed",
    ),
    pytest.param("-A -t 192.0.2.11 -s rr", "missing port in virtual service '192.0.2.11'", id="missing-port"),
    pytest.param("-A -t 192.0.2.11:65536 -s rr", "virtual service port 65536 out of range 0..65535", id="port-range"),
    pytest.param(
        "-a -t 192.0.2.10:80 -r 198.51.100.1:http -m -w 1",
        "bad real server port 'http': not a number",
        id="named-port",
    ),
    pytest.param(
        "-a -t 192.0.2.10:80 -r 198.51.100.1:80 -m -w 2147483648",
        "weight 2147483648 out of range 0..2147483647",
        id="weight-range",
    ),
    pytest.param(
        "-a -t 192.0.2.10:80 -r 198.51.100.1:80 -m -w -1", "bad weight '-1': not a number", id="weight-negative"
    ),
    pytest.param(
        "-a -t 192.0.2.10:80 -r 198.51.100.1:80 -m -w 1 -x 5 -y 10",
        "lower threshold 10 out of range 0..5",
        id="lower-above-upper-threshold",
    ),
    pytest.param("-A -t 192.0.2.11:80 -s", "missing value for -s", id="missing-value-at-end"),
    pytest.param(
        "-a -t 192.0.2.10:80 -r 198.51.100.1:80 -w -m", "missing value for -w", id="missing-value-before-option"
    ),
    pytest.param("-A -s rr", "missing virtual service (-t, -u, --sctp-service or -f)", id="missing-service"),
    pytest.param("-a -t 192.0.2.10:80 -m -w 1", "missing real server (-r)", id="missing-real"),
    pytest.param(
        "-A -t 192.0.2.11:80 -s rr -p 300 -M 255.0.255.0",
        "non-contiguous persistence netmask 255.0.255.0",
        id="non-contiguous-mask",
    ),
    pytest.param(
        "-A -t 192.0.2.11:80 -s rr -p 300 -M 24",
        "bad persistence netmask '24': IPv4 needs a dotted mask",
        id="ipv4-prefix-mask",
    ),
    pytest.param(
        "-A -t 192.0.2.11:80 -s rr -M 255.255.255.0",
        "netmask (-M) given without persistence (-p)",
        id="mask-without-persistence",
    ),
    pytest.param(
        "-A -t [2001:db8::1]:80 -s rr -p 300 -M 129",
        "persistence netmask 129 out of range 1..128",
        id="ipv6-prefix-range",
    ),
    pytest.param("-A -t 192.0.2.11:80 -s rr -p 0", "persistence timeout 0 out of range 1..2678400", id="timeout-range"),
    pytest.param("-A -t 192.0.2.11:80 -6 -s rr", "-6 is only valid after -f", id="ipv6-flag-without-fwmark"),
    pytest.param("-A -f 0 -s rr", "firewall mark 0 out of range 1..4294967295", id="fwmark-zero"),
    pytest.param(
        "-A -t 192.0.2.11:80 -s rr -b sh-port", "scheduler flag sh-port needs scheduler sh", id="flag-scheduler"
    ),
    pytest.param("-A -t 192.0.2.11:80 -s rr -b bogus", "unknown scheduler flag 'bogus'", id="unknown-flag"),
    pytest.param(
        "-A -t 192.0.2.11:80 -s sh -b flag-3",
        "scheduler flag flag-3 cannot be saved with scheduler sh",
        id="unprintable-flag",
    ),
    pytest.param(
        "-A -t 192.0.2.11:80 -s rr -o",
        "one-packet scheduling (-o) is only for UDP and fwmark services",
        id="one-packet-tcp",
    ),
    pytest.param("-A -t 192.0.2.11:0 -s rr", "port 0 needs persistence (-p)", id="port-zero"),
    pytest.param(
        "-a -t 192.0.2.10:80 -r 198.51.100.1:80 -i -w 1 --tun-type gue",
        "unsupported tunnel type 'gue': only ipip is modelled",
        id="tunnel-type",
    ),
    pytest.param(
        "-a -t 192.0.2.10:80 -r 198.51.100.1:80 -m -w 1 --tun-type ipip",
        "--tun-type needs tunneling (-i)",
        id="tunnel-type-without-tunnel",
    ),
    pytest.param(
        "-a -t 192.0.2.10:80 -r [2001:db8::1]:80 -m -w 1",
        "real server [2001:db8::1]:80 is not of the family of tcp/192.0.2.10:80 (only -i may differ)",
        id="family-mismatch",
    ),
    pytest.param(
        "-E -t 192.0.2.10:80 -s wlc",
        "unsupported command '-E': a save holds only -A and -a lines",
        id="edit-command",
    ),
    pytest.param("-A -t 192.0.2.11:80 -s rr 300", "unexpected argument '300'", id="stray-argument"),
    pytest.param(
        "-a -t 192.0.2.10:80 -r 198.51.100.1:80 -m -g -w 1", "options -m and -g exclude each other", id="two-methods"
    ),
    pytest.param("-A -t 192.0.2.11:80 -s rr -s wlc", "option -s given twice", id="repeated-option"),
    pytest.param("-A -t 192.0.2.11:80 -s rr -w 1", "option -w is not allowed with -A", id="option-for-other-command"),
    pytest.param("-A -t 192.0.2.11:80 -s Round-Robin", "bad scheduler name 'Round-Robin'", id="scheduler-name"),
    pytest.param(
        "-a -t 192.0.2.10:80 -r 198.51.100.1:80 -m -w ²", "bad weight '²': not a number", id="weight-unicode-digit"
    ),
    pytest.param(
        "-a -t 192.0.2.10:80 -r 198.51.100.1:80 -m -w " + "9" * 5000,
        "weight of 5000 digits out of range",
        id="weight-5000-digits",
    ),
    pytest.param(
        "-a -t 192.0.2.10:80 -r 198.51.100.1:" + "8" * 5000 + " -m -w 1",
        "real server port of 5000 digits out of range",
        id="port-5000-digits",
    ),
    pytest.param(
        "-A -t 192.0.2.11:80 -s rr -p " + "3" * 5000,
        "persistence timeout of 5000 digits out of range",
        id="timeout-5000",
    ),
    pytest.param(
        "-A -t [2001:db8::1]:80 -s rr -p 300 -M " + "6" * 5000,
        "persistence netmask of 5000 digits out of range",
        id="ipv6-mask-5000-digits",
    ),
    pytest.param("-A -f " + "7" * 5000 + " -s rr", "firewall mark of 5000 digits out of range", id="fwmark-5000"),
    pytest.param("-A -f -" + "7" * 5000 + " -s rr", "firewall mark of 5000 digits out of range", id="fwmark-neg-5000"),
    pytest.param(
        "-a -t 192.0.2.10:80 -r 198.51.100.1:80 -m -w 1 -x " + "1" * 21,
        "upper threshold of 21 digits out of range",
        id="threshold-21-digits",
    ),
]


@pytest.mark.parametrize(("lines", "message"), MALFORMED)
def test_malformed_line_is_reported(lines: str, message: str) -> None:
    """A bad line raises SaveFormatError with its specific message and its line number."""
    text = "# header\n" + HEADER + lines + "\n"
    with pytest.raises(SaveFormatError) as caught:
        parse_save(text)
    assert caught.value.message == message
    assert caught.value.line_number == text.count("\n")


def test_line_numbers_count_comments_and_blank_lines() -> None:
    """The reported line number is the line's position in the text, skipped lines included."""
    with pytest.raises(SaveFormatError) as caught:
        parse_save("# saved\n\n" + HEADER + "\n-A -t 192.0.2.11:80 -s rr -o\n")
    assert caught.value.line_number == 5


def test_error_names_source_and_line() -> None:
    """The error text says where (file:line), what, and quotes the line."""
    with pytest.raises(SaveFormatError) as caught:
        parse_save(HEADER + "-A -t 192.0.2.11:80 -s rr -q\n", source="node.save")
    assert str(caught.value) == "node.save:2: unknown option '-q': '-A -t 192.0.2.11:80 -s rr -q'"


def test_non_utf8_save_names_the_line() -> None:
    """Save bytes that are not UTF-8 raise SaveFormatError naming the line and the byte, not UnicodeDecodeError."""
    data = (HEADER + "# saved at the caf\xe9\n" + REAL).encode("latin-1")
    with pytest.raises(SaveFormatError) as caught:
        parse_save(data, source="node.save")
    assert (caught.value.line_number, caught.value.message) == (2, "not UTF-8 text (byte 0xe9 at column 19)")
    assert str(caught.value).startswith("node.save:2: ")


def test_utf8_save_bytes_parse_as_text() -> None:
    """Save bytes that are UTF-8 parse exactly as the same text does."""
    assert parse_save((HEADER + REAL).encode()) == parse_save(HEADER + REAL)


# --- restore -------------------------------------------------------------------------------------

MASQ_REAL = RealServer("198.51.100.11", 8080)


@pytest.mark.parametrize(
    ("operation", "line"),
    [
        pytest.param(AddVirtualService(VirtualService(TCP_80)), "-A -t 192.0.2.10:80 -s rr", id="add-service"),
        pytest.param(
            AddVirtualService(VirtualService(TCP_80, persistence=Persistence(10800, 32))),
            "-A -t 192.0.2.10:80 -s rr -p 10800 -M 255.255.255.255",
            id="add-persistent-full-mask-explicit",
        ),
        pytest.param(
            AddVirtualService(VirtualService(MARK6_9, persistence=Persistence(300, 64))),
            "-A -f 9 -6 -s rr -p 300 -M 64",
            id="add-fwmark-ipv6-prefix",
        ),
        pytest.param(
            EditVirtualService(
                VirtualService(TCP_80, scheduler="wlc"),
                previous=VirtualService(TCP_80, persistence=Persistence(10800, 32)),
            ),
            "-E -t 192.0.2.10:80 -s wlc",
            id="edit-drops-persistence",
        ),
        pytest.param(
            EditVirtualService(
                VirtualService(
                    UDP_53,
                    scheduler="sh",
                    persistence=Persistence(60, 24),
                    sched_flags=frozenset({"sh-port"}),
                    one_packet=True,
                    pe_name="sip",
                ),
                previous=VirtualService(UDP_53),
            ),
            "-E -u 192.0.2.10:53 -s sh -p 60 -M 255.255.255.0 --pe sip -o -b sh-port",
            id="edit-every-setting",
        ),
        pytest.param(DeleteVirtualService(VirtualService(TCP_80)), "-D -t 192.0.2.10:80", id="delete-service"),
        pytest.param(
            DeleteVirtualService(VirtualService(SCTP_3868)), "-D --sctp-service 192.0.2.10:3868", id="delete-sctp"
        ),
        pytest.param(
            DeleteVirtualService(VirtualService(ServiceKey.fwmark(2**32 - 1))),
            "-D -f 4294967295",
            id="delete-high-fwmark-unsigned",
        ),
        pytest.param(
            AddRealServer(TCP_80, MASQ_REAL),
            "-a -t 192.0.2.10:80 -r 198.51.100.11:8080 -m -w 1",
            id="add-real",
        ),
        pytest.param(
            AddRealServer(
                TCP_80,
                RealServer("198.51.100.11", 80, forwarding=Forwarding.TUNNEL, upper_threshold=100, lower_threshold=10),
            ),
            "-a -t 192.0.2.10:80 -r 198.51.100.11:80 -i -w 1 -x 100 -y 10",
            id="add-tunnel-real-thresholds",
        ),
        pytest.param(
            EditRealServer(TCP_80, MASQ_REAL.with_weight(0), previous=MASQ_REAL, drain=True),
            "-e -t 192.0.2.10:80 -r 198.51.100.11:8080 -m -w 0",
            id="edit-real-drain",
        ),
        pytest.param(
            DeleteRealServer(TCP6_80, RealServer("2001:db8:1::11", 8080)),
            "-d -t [2001:db8::10]:80 -r [2001:db8:1::11]:8080",
            id="delete-real-ipv6",
        ),
    ],
)
def test_render_restore_line(operation: Operation, line: str) -> None:
    """Each operation becomes the one ipvsadm -R line that performs it."""
    assert render_restore([operation]) == line + "\n"


def test_render_restore_keeps_operation_order() -> None:
    """Operations become lines in the order given."""
    operations: list[Operation] = [
        AddVirtualService(VirtualService(TCP_80)),
        AddRealServer(TCP_80, MASQ_REAL),
        DeleteVirtualService(VirtualService(UDP_53)),
    ]
    assert render_restore(operations).splitlines() == [
        "-A -t 192.0.2.10:80 -s rr",
        "-a -t 192.0.2.10:80 -r 198.51.100.11:8080 -m -w 1",
        "-D -u 192.0.2.10:53",
    ]


def test_render_restore_of_nothing_is_empty() -> None:
    """No operations, no lines."""
    assert render_restore([]) == ""


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        pytest.param(
            AddRealServer(TCP_80, MASQ_REAL.with_weight(65536)),
            "weight 65536 out of range 0..65535",
            id="weight-above-ipvsadm-limit",
        ),
        pytest.param(
            EditRealServer(TCP_80, RealServer("198.51.100.11", 8080, forwarding=Forwarding.ROUTE), previous=MASQ_REAL),
            "ipvsadm would give real server 198.51.100.11:8080 of tcp/192.0.2.10:80 the service port",
            id="route-port-rewritten",
        ),
        pytest.param(
            AddVirtualService(VirtualService(TCP_80, one_packet=True)),
            "one-packet scheduling (-o) is only for UDP and fwmark services",
            id="one-packet-tcp",
        ),
    ],
)
def test_render_restore_rejects_what_ipvsadm_cannot_say(operation: Operation, message: str) -> None:
    """An operation ipvsadm -R would refuse or silently alter raises ValueError."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        render_restore([operation])


@given(tables())
def test_restore_adds_read_back_as_the_table(table: Table) -> None:
    """The -A/-a lines that build a table, read as a save, are that table, thresholds included."""
    operations: list[Operation] = []
    for service in table:
        operations.append(AddVirtualService(service.settings()))
        operations.extend(AddRealServer(service.key, real) for real in service.reals)
    assert parse_save(render_restore(operations)) == table
