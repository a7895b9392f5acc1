"""ipvsctl's nftables table, written out as the ``nft`` language (pure).

The table is ``inet ipvsctl``; ipvsctl never touches any other table, chain or rule. Its chains never
change with the Services (``elements.py``: every decision is a set lookup):

- ``input`` (filter, priority filter, before IPVS's LOCAL_IN hooks): packets to an address of the agent's
  interface go through ``vip_filter4/6``: established and related traffic passes; a source outside a
  Service's ``loadBalancerSourceRanges`` is dropped; a port that is a virtual service passes; ICMP echo
  requests pass (the node answers pings on its VIPs, as with kube-proxy); anything else is rejected (TCP
  reset, else ICMP port unreachable), so no host socket answers on a VIP.
- ``prerouting`` and ``output`` (filter, priority mangle, before IPVS): connections to an external VIP of a
  ``Cluster`` Service, and to a ClusterIP from outside the cluster CIDRs, get the masquerade bit of the
  packet mark (``--masquerade-bit``, 14 as kube-proxy's ``--iptables-masquerade-bit``).
- ``postrouting`` (nat, priority srcnat): a packet with the bit is masqueraded (the bit cleared), and so
  is a pod's connection that IPVS scheduled back to that pod (hairpin). IPVS-forwarded packets reach this
  hook only with ``net.ipv4.vs.conntrack=1``, which the agent sets.

A rewrite of the whole table (``replace_table``) is one ``nft -f`` transaction: the table is created if
absent and then deleted, so the new definition never merges with a stale one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from ipvsctl.netfilter.elements import Element, Kind, Value, set_name

__all__ = [
    "DEFAULT_MASQUERADE_BIT",
    "FAMILY",
    "TABLE",
    "create_dormant",
    "element_text",
    "replace_table",
    "table_definition",
]

FAMILY = "inet"
TABLE = "ipvsctl"
DEFAULT_MASQUERADE_BIT = 14
_ELEMENTS_PER_COMMAND = 2000  # nft reads any length; bounded lines keep an error message readable

_ADDRESS_TYPES = {4: "ipv4_addr", 6: "ipv6_addr"}
_SET_TYPES: dict[Kind, str] = {
    Kind.VIPS: "{addr}",
    Kind.SERVICES: "{addr} . inet_proto . inet_service",
    Kind.MASQUERADE: "{addr} . inet_proto . inet_service",
    Kind.CLUSTER: "{addr} . inet_proto . inet_service",
    Kind.HAIRPIN: "{addr} . inet_proto . inet_service . {addr}",
    Kind.RANGED: "{addr} . inet_proto . inet_service",
    Kind.ALLOWED: "{addr} . inet_proto . inet_service . {addr}",
}
_IP = {4: "ip", 6: "ip6"}
_ICMP_ECHO = {4: "icmp type echo-request", 6: "icmpv6 type echo-request"}


def table_definition(
    *, masquerade_bit: int = DEFAULT_MASQUERADE_BIT, cluster_cidrs: Sequence[str] = (), dormant: bool = False
) -> str:
    """The table with its sets (empty) and chains, as an ``nft -f`` block.

    ``cluster_cidrs`` (the pod network, ``--cluster-cidr``) are written into the rules that masquerade
    ClusterIP traffic from elsewhere; a family without one gets no such rule. A ``dormant`` table's chains
    are not on their hooks: no packet sees them until the table is woken (``create_dormant``).
    """
    mark = f"0x{1 << masquerade_bit:08x}"
    keep = f"0x{0xFFFFFFFF ^ (1 << masquerade_bit):08x}"
    lines = [f"table {FAMILY} {TABLE} {{", '\tcomment "ipvsctl: the netfilter half of its Services; do not edit"']
    if dormant:
        lines.append("\tflags dormant;")
    for family in (4, 6):
        for kind in Kind:
            flags = "; flags interval" if kind.interval else ""
            key_type = _SET_TYPES[kind].format(addr=_ADDRESS_TYPES[family])
            lines.append(f"\tset {set_name(kind, family)} {{ type {key_type}{flags}; }}")
    lines += [
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
        *(f"\t\t{_IP[f]} daddr @{set_name(Kind.VIPS, f)} jump vip_filter{f}" for f in (4, 6)),
        "\t}",
    ]
    for family in (4, 6):
        ip, tuple3 = _IP[family], f"{_IP[family]} daddr . meta l4proto . th dport"
        lines += [
            f"\tchain vip_filter{family} {{",
            "\t\tct state established,related accept",
            f"\t\t{tuple3} @{set_name(Kind.RANGED, family)}"
            f" {tuple3} . {ip} saddr != @{set_name(Kind.ALLOWED, family)} drop",
            f"\t\t{tuple3} @{set_name(Kind.SERVICES, family)} accept",
            f"\t\t{_ICMP_ECHO[family]} accept",
            "\t\tmeta l4proto tcp reject with tcp reset",
            "\t\treject",
            "\t}",
        ]
    for chain, hook in (("prerouting", "prerouting"), ("output", "output")):
        lines += [f"\tchain {chain} {{", f"\t\ttype filter hook {hook} priority mangle; policy accept;"]
        for family in (4, 6):
            ip, tuple3 = _IP[family], f"{_IP[family]} daddr . meta l4proto . th dport"
            lines.append(f"\t\t{tuple3} @{set_name(Kind.MASQUERADE, family)} meta mark set meta mark | {mark}")
            pod_network = ", ".join(cidr for cidr in cluster_cidrs if (":" in cidr) == (family == 6))
            if pod_network:
                lines.append(
                    f"\t\t{tuple3} @{set_name(Kind.CLUSTER, family)} {ip} saddr != {{ {pod_network} }}"
                    f" meta mark set meta mark | {mark}"
                )
        lines.append("\t}")
    lines += [
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        f"\t\tmeta mark & {mark} == {mark} meta mark set meta mark & {keep} masquerade",
        *(
            f"\t\t{_IP[f]} daddr . meta l4proto . th dport . {_IP[f]} saddr @{set_name(Kind.HAIRPIN, f)} masquerade"
            for f in (4, 6)
        ),
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def element_text(value: Value) -> str:
    """One element as nft writes it: ``203.0.113.10 . tcp . 80``."""
    return " . ".join(map(str, value))  # map, not a generator: 50,000 elements in an apply's whole table


def replace_table(
    elements: Iterable[Element], *, masquerade_bit: int = DEFAULT_MASQUERADE_BIT, cluster_cidrs: Sequence[str] = ()
) -> str:
    """One ``nft -f`` transaction that makes the table exactly this definition holding these elements."""
    by_set: dict[str, list[str]] = defaultdict(list)
    for name, value in elements:
        by_set[name].append(element_text(value))
    lines = [
        f"table {FAMILY} {TABLE}",
        f"delete table {FAMILY} {TABLE}",
        table_definition(masquerade_bit=masquerade_bit, cluster_cidrs=cluster_cidrs),
    ]
    for name in sorted(by_set):
        values = sorted(by_set[name])
        for start in range(0, len(values), _ELEMENTS_PER_COMMAND):
            chunk = ", ".join(values[start : start + _ELEMENTS_PER_COMMAND])
            lines.append(f"add element {FAMILY} {TABLE} {name} {{ {chunk} }}")
    return "\n".join(lines) + "\n"


def create_dormant(*, masquerade_bit: int = DEFAULT_MASQUERADE_BIT, cluster_cidrs: Sequence[str] = ()) -> str:
    """One ``nft -f`` transaction that makes the table its definition, empty and dormant (off its hooks).

    The first half of writing a table that was not there: its elements then go over netlink in one
    transaction with the table's waking, so no packet meets the chains before their sets are full
    (``backend.nft.kernel``). Any table of the name is deleted first, as by ``replace_table``.
    """
    definition = table_definition(masquerade_bit=masquerade_bit, cluster_cidrs=cluster_cidrs, dormant=True)
    return f"table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n{definition}"
