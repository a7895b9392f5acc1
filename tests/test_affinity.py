"""Pins: persistence templates joined with the table's netmasks and timeouts, named, filtered and rendered."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ipvsctl.affinity import Pin, PinFilter, find_pins, parse_pin_filter, pins_json, pins_text
from ipvsctl.conntable import Connection, parse_connections
from ipvsctl.errors import UsageError
from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import Persistence, Protocol, RealServer, RealServerKey, ServiceKey, Table, VirtualService

WEB = ServiceKey(Protocol.TCP, "203.0.113.10", 80)
WEB6 = ServiceKey(Protocol.TCP, "2001:db8::10", 80)
DNS = ServiceKey(Protocol.UDP, "203.0.113.53", 53)
FTP = ServiceKey(Protocol.TCP, "203.0.113.21", 21)
MARK = ServiceKey.fwmark(7)

TABLE = Table.of(
    [
        VirtualService(
            WEB,
            persistence=Persistence(300, 24),
            reals=(RealServer("198.51.100.2", 8080), RealServer("198.51.100.3", 8080)),
        ),
        VirtualService(WEB6, persistence=Persistence(10800, 64), reals=(RealServer("2001:db8:2::11", 8080),)),
        VirtualService(DNS, reals=(RealServer("198.51.100.6", 53),)),
        VirtualService(FTP, persistence=Persistence(360, 32), reals=(RealServer("198.51.100.5", 21),)),
        VirtualService(MARK, persistence=Persistence(600, 32), reals=(RealServer("198.51.100.4", 0),)),
    ]
)
WEB_REF = ObjectRef("default", "web")
WEB6_REF = ObjectRef("default", "web6")
OWNERS = {WEB: WEB_REF, WEB6: WEB6_REF, DNS: ObjectRef("kube-system", "dns")}
WEB_0 = ObjectRef("default", "web-0")
WEB6_0 = ObjectRef("default", "web6-0")
PODS = {"198.51.100.2": WEB_0, "2001:db8:2::11": WEB6_0}

# A node's /proc/net/ip_vs_conn: /24 templates of WEB for two networks, a connection one of them pinned,
# a /64 template of WEB6, a fwmark template, an FTP template (port 0) and a leftover of DNS, which is not
# persistent any more.
SAMPLE = """\
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP C0000200 0000 CB00710A 0050 C6336402 1F90 ASSURED         295
TCP C000024D C822 CB00710A 0050 C6336402 1F90 ESTABLISHED     899
TCP CB007100 0000 CB00710A 0050 C6336403 1F90 NONE            120
TCP 2001:0db8:0001:0000:0000:0000:0000:0000 0000 2001:0db8:0000:0000:0000:0000:0000:0010 0050 \
2001:0db8:0002:0000:0000:0000:0000:0011 1F90 ASSURED       10790
IP  C0000209 0000 00000007 0000 C6336404 0000 ASSURED         598
TCP C0000208 0000 CB007115 0000 C6336405 0000 ASSURED         200
UDP C0000200 0000 CB007135 0035 C6336406 0035 UDP              30
"""
CONNECTIONS = parse_connections(SAMPLE)

PIN_192 = Pin(WEB, WEB_REF, "192.0.2.0", 24, RealServerKey("198.51.100.2", 8080), WEB_0, 295, 300)
PIN_203 = Pin(WEB, WEB_REF, "203.0.113.0", 24, RealServerKey("198.51.100.3", 8080), None, 120, 300)
PIN_V6 = Pin(WEB6, WEB6_REF, "2001:db8:1::", 64, RealServerKey("2001:db8:2::11", 8080), WEB6_0, 10790, 10800)
PIN_FTP = Pin(FTP, None, "192.0.2.8", 32, RealServerKey("198.51.100.5", 0), None, 200, 360)
PIN_MARK = Pin(MARK, None, "192.0.2.9", 32, RealServerKey("198.51.100.4", 0), None, 598, 600)


def pins(where: PinFilter | None = None, connections: tuple[Connection, ...] = CONNECTIONS) -> list[Pin]:
    """The sample's pins with the sample's names."""
    return find_pins(connections, table=TABLE, owners=OWNERS, pods=PODS, where=where)


def test_every_template_of_a_persistent_service_is_a_pin_in_order() -> None:
    """Templates become pins sorted by service and network; connections and the DNS leftover do not."""
    assert pins() == [PIN_192, PIN_203, PIN_FTP, PIN_MARK, PIN_V6]


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        ("192.0.2.77", [PIN_192]),
        ("192.0.2.0", [PIN_192]),
        ("203.0.113.250", [PIN_203]),
        ("2001:db8:1::abcd", [PIN_V6]),
        ("2001:db8:1:0:ffff:ffff:ffff:ffff", [PIN_V6]),
        ("192.0.2.9", [PIN_192, PIN_MARK]),
    ],
    ids=["v4-host-in-24", "v4-network-address", "other-24", "v6-host-in-64", "v6-last-in-64", "two-services"],
)
def test_client_is_pinned_by_the_template_of_its_masked_network(client: str, expected: list[Pin]) -> None:
    """client & mask == template client, with each service's own prefix."""
    assert pins(PinFilter(client=client)) == expected


@pytest.mark.parametrize(
    "client",
    ["198.51.100.77", "192.0.3.1", "2001:db8:1:1::1", "2001:db8::77"],
    ids=["v4-elsewhere", "v4-next-24", "v6-next-64", "v6-elsewhere"],
)
def test_client_outside_every_network_is_not_pinned(client: str) -> None:
    """A client no template covers gets no pin."""
    assert pins(PinFilter(client=client)) == []


def test_template_masked_with_an_older_netmask_covers_nobody() -> None:
    """After the netmask changed, the kernel masks with the new prefix, so a /32 template matches no client."""
    stale = parse_connections(SAMPLE.splitlines()[0] + "\nTCP C000024D 0000 CB00710A 0050 C6336402 1F90 NONE 90\n")
    (pin,) = pins(connections=stale)
    assert (pin.client_network, pin.covers("192.0.2.77")) == ("192.0.2.77/24", False)


@pytest.mark.parametrize(
    ("template", "client", "expected"),
    [
        (PIN_192, "192.0.2.255", True),
        (PIN_192, "192.0.1.255", False),
        (PIN_192, "2001:db8:1::", False),
        (PIN_V6, "192.0.2.0", False),
        (PIN_MARK, "192.0.2.9", True),
        (PIN_MARK, "192.0.2.10", False),
    ],
    ids=["last-of-24", "previous-24", "v6-client-v4-pin", "v4-client-v6-pin", "host-32", "neighbour-32"],
)
def test_covers_compares_families_and_masked_addresses(template: Pin, client: str, expected: bool) -> None:
    """covers is false across families and outside the prefix."""
    assert template.covers(client) is expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (PinFilter(vip="203.0.113.10", vip_port=80), [PIN_192, PIN_203]),
        (PinFilter(vip="203.0.113.10"), [PIN_192, PIN_203]),
        (PinFilter(vip="203.0.113.10", vip_port=443), []),
        (PinFilter(vip="203.0.113.21", vip_port=21), [PIN_FTP]),
        (PinFilter(vip="2001:db8::10", vip_port=80), [PIN_V6]),
        (PinFilter(vip="0.0.0.0", vip_port=7), []),
    ],
    ids=["vip-and-port", "vip-any-port", "other-port", "ftp-template-port-0", "v6", "fwmark-is-no-vip"],
)
def test_vip_filter_selects_the_virtual_service(where: PinFilter, expected: list[Pin]) -> None:
    """--vip matches the service's address and, when given, its port; fwmark services have no VIP."""
    assert pins(where) == expected


@pytest.mark.parametrize(
    ("service", "expected"),
    [(WEB6_REF, [PIN_V6]), (WEB_REF, [PIN_192, PIN_203]), (ObjectRef("default", "absent"), [])],
    ids=["web6", "web", "absent"],
)
def test_service_filter_selects_by_owner(service: ObjectRef, expected: list[Pin]) -> None:
    """--service matches the Service that owns the VIP."""
    assert pins(PinFilter(service=service)) == expected


def test_filters_combine() -> None:
    """Every filter set must match."""
    assert pins(PinFilter(client="192.0.2.9", service=WEB_REF)) == [PIN_192]


def test_pins_without_naming_context_have_no_refs() -> None:
    """Without owners and pods, service and pod are None and the rest is unchanged."""
    (pin,) = find_pins(CONNECTIONS, table=TABLE, where=PinFilter(client="2001:db8:1::1"))
    assert (pin.service, pin.pod, pin.real_server) == (None, None, PIN_V6.real_server)


def test_sync_entries_are_pins_too() -> None:
    """Templates from /proc/net/ip_vs_conn_sync pin like local ones."""
    text = "Pro FromIP FPrt ToIP TPrt DestIP DPrt State Origin Expires\n"
    text += "TCP C0000200 0000 CB00710A 0050 C6336402 1F90 ASSURED SYNC 295\n"
    assert pins(connections=parse_connections(text)) == [PIN_192]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"client": " 192.0.2.77 "}, PinFilter(client="192.0.2.77")),
        ({"client": "2001:DB8:1::ABCD"}, PinFilter(client="2001:db8:1::abcd")),
        ({"vip": "203.0.113.10:80"}, PinFilter(vip="203.0.113.10", vip_port=80)),
        ({"vip": "203.0.113.10"}, PinFilter(vip="203.0.113.10")),
        ({"vip": "[2001:db8::10]:80"}, PinFilter(vip="2001:db8::10", vip_port=80)),
        ({"vip": "[2001:db8::10]"}, PinFilter(vip="2001:db8::10")),
        ({"vip": "2001:db8::10"}, PinFilter(vip="2001:db8::10")),
        ({"service": "default/web"}, PinFilter(service=WEB_REF)),
    ],
    ids=["client-v4", "client-v6", "vip-port", "vip", "vip6-port", "vip6-brackets", "vip6", "service"],
)
def test_parse_pin_filter_reads_the_flags(flags: dict[str, str], expected: PinFilter) -> None:
    """Flag values become canonical filter fields."""
    assert parse_pin_filter(**flags) == expected


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"client": "192.0.2.0/24"}, "--client: '192.0.2.0/24' is not an IP address"),
        ({"vip": "web:80"}, "--vip: 'web' is not an IP address"),
        ({"vip": "203.0.113.10:http"}, "--vip: 'http' is not a port in 0..65535"),
        ({"vip": "203.0.113.10:65536"}, "--vip: '65536' is not a port in 0..65535"),
        ({"vip": "[2001:db8::10"}, "--vip: '[2001:db8::10' is not IP, IP:PORT or [IPv6]:PORT"),
        ({"service": "web"}, "--service: 'web' is not NAMESPACE/NAME"),
        ({"service": "default/web/x"}, "--service: 'default/web/x' is not NAMESPACE/NAME"),
        ({"vip": "203.0.113.10:²"}, "--vip: '²' is not a port in 0..65535"),
        ({"vip": "203.0.113.10:\u0668\u0660"}, "--vip: '\u0668\u0660' is not a port in 0..65535"),
        ({"vip": "203.0.113.10:" + "8" * 5000}, "--vip: '" + "8" * 5000 + "' is not a port in 0..65535"),
    ],
    ids=[
        "client-cidr",
        "vip-name",
        "vip-port-name",
        "vip-port-range",
        "vip-unclosed",
        "service-no-ns",
        "service-deep",
        "vip-port-superscript",
        "vip-port-arabic-indic",
        "vip-port-5000-digits",
    ],
)
def test_parse_pin_filter_names_the_bad_flag(flags: dict[str, str], message: str) -> None:
    """A bad value raises UsageError naming its flag."""
    with pytest.raises(UsageError) as caught:
        parse_pin_filter(**flags)
    assert str(caught.value) == message


def test_text_is_an_aligned_table() -> None:
    """One row per pin under SERVICE VIP CLIENT REAL SERVER POD EXPIRES; '-' for no name."""
    assert pins_text([PIN_192, PIN_MARK, PIN_V6]) == (
        "SERVICE       VIP                    CLIENT           REAL SERVER            POD             EXPIRES\n"
        "default/web   tcp/203.0.113.10:80    192.0.2.0/24     198.51.100.2:8080      default/web-0   295s/300s\n"
        "-             fwmark:7               192.0.2.9/32     198.51.100.4:0         -               598s/600s\n"
        "default/web6  tcp/[2001:db8::10]:80  2001:db8:1::/64  [2001:db8:2::11]:8080  default/web6-0  10790s/10800s\n"
    )


def test_text_escapes_control_characters_in_names() -> None:
    """Service and Pod names with a newline or an escape sequence stay inside their cell, escaped."""
    service = ObjectRef("default", "web\nforged  tcp/203.0.113.99:80")
    pod = ObjectRef("default", "web-0\x1b[2J")
    rows = pins_text([replace(PIN_192, service=service, pod=pod)]).splitlines()
    assert len(rows) == 2
    assert rows[1].startswith("default/web\\nforged  tcp/203.0.113.99:80  tcp/203.0.113.10:80")
    assert rows[1].endswith("default/web-0\\x1b[2J  295s/300s")


def test_text_says_when_nobody_is_pinned() -> None:
    """An empty result is a sentence, not a bare header."""
    assert pins_text([]) == "no client is pinned\n"


def test_json_document_is_stable() -> None:
    """The ipvsctl.affinity/v1 document spells every field out."""
    assert pins_json([PIN_192, PIN_MARK]) == {
        "schema": "ipvsctl.affinity/v1",
        "pins": [
            {
                "service": {"namespace": "default", "name": "web"},
                "virtualService": {"protocol": "tcp", "address": "203.0.113.10", "port": 80},
                "clientNetwork": "192.0.2.0/24",
                "realServer": {"address": "198.51.100.2", "port": 8080},
                "pod": {"namespace": "default", "name": "web-0"},
                "expiresSeconds": 295,
                "timeoutSeconds": 300,
            },
            {
                "service": None,
                "virtualService": {"protocol": "fwmark", "address": "0.0.0.0", "port": 7},
                "clientNetwork": "192.0.2.9/32",
                "realServer": {"address": "198.51.100.4", "port": 0},
                "pod": None,
                "expiresSeconds": 598,
                "timeoutSeconds": 600,
            },
        ],
    }
