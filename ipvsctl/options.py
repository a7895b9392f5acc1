"""Command-line values → core settings, with errors that name the flag (pure)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

import netaddr

from ipvsctl.annotations import AFFINITY_SCOPES
from ipvsctl.errors import UsageError
from ipvsctl.model import DEFAULT_SCHEDULERS, canonical_ip, max_prefix
from ipvsctl.translate import NodePortAddresses, Policy

__all__ = [
    "AFFINITY_SWITCH_DELAY",
    "IPVS_TIMEOUT_DEFAULTS",
    "MASQUERADE_BIT_DEFAULT",
    "MAX_IPVS_TIMEOUT",
    "NETFILTER_DEFAULTS",
    "POLICY_DEFAULTS",
    "IpvsTimeoutFlags",
    "NetfilterFlags",
    "PolicyFlags",
    "parse_cidrs",
    "parse_node_ips",
    "parse_node_port_addresses",
    "parse_port",
    "parse_port_range",
    "parse_prefix",
]

# ASCII digits only: str.isdigit() also takes superscripts and other scripts' digits, which int() refuses.
_PORT = re.compile(r"[0-9]{1,5}")


def parse_port(text: str, *, flag: str, allow_zero: bool = False) -> int:
    """A port number written in ASCII digits: 1..65535 (0 too with ``allow_zero``)."""
    low = 0 if allow_zero else 1
    if _PORT.fullmatch(text) is None or not low <= int(text) <= 65535:
        raise UsageError(f"{text!r} is not a port number {low}..65535", flag=flag)
    return int(text)


def parse_port_range(text: str, *, flag: str = "--node-port-range") -> tuple[int, int]:
    """``30000-32767`` → (30000, 32767)."""
    low_text, sep, high_text = text.partition("-")
    if not sep or _PORT.fullmatch(low_text.strip()) is None or _PORT.fullmatch(high_text.strip()) is None:
        raise UsageError(f"{text!r} is not a port range like 30000-32767", flag=flag)
    low, high = int(low_text), int(high_text)
    if not 1 <= low <= high <= 65535:
        raise UsageError(f"{text!r} must satisfy 1 <= low <= high <= 65535", flag=flag)
    return low, high


def parse_cidrs(values: Sequence[str], *, flag: str) -> netaddr.IPSet:
    """CIDRs (or single addresses) → an IPSet."""
    networks = []
    for value in values:
        try:
            networks.append(netaddr.IPNetwork(value.strip()))
        except (netaddr.AddrFormatError, ValueError, TypeError):
            raise UsageError(f"{value!r} is not a CIDR like 192.0.2.0/24", flag=flag) from None
    return netaddr.IPSet(networks)


def parse_node_ips(values: Sequence[str], *, flag: str = "--node-ip") -> tuple[str, ...]:
    """Node IPs → canonical, deduplicated, in the order given."""
    seen: dict[str, None] = {}
    for value in values:
        try:
            seen[canonical_ip(value)] = None
        except ValueError:
            raise UsageError(f"{value!r} is not an IP address", flag=flag) from None
    return tuple(seen)


PRIMARY_KEYWORD = "primary"


def parse_node_port_addresses(values: Sequence[str], *, flag: str = "--nodeport-addresses") -> NodePortAddresses | None:
    """``--nodeport-addresses`` (repeatable, each comma-separated, as kube-proxy's) → the addresses NodePorts are
    limited to: CIDRs, and ``primary`` for the node's primary address of each family (kube-proxy >= 1.29).
    None when no value is given: NodePorts on every node address, as before."""
    cidrs: dict[str, None] = {}
    primary = False
    for value in values:
        for entry in value.split(","):
            text = entry.strip()
            if text == PRIMARY_KEYWORD:
                primary = True
                continue
            try:
                cidrs[str(ipaddress.ip_network(text, strict=False))] = None
            except ValueError:
                raise UsageError(
                    f"{text!r} is not a CIDR like 192.0.2.0/24 or the keyword {PRIMARY_KEYWORD!r}", flag=flag
                ) from None
    if not cidrs and not primary:
        return None
    return NodePortAddresses(cidrs=tuple(cidrs), primary=primary)


def parse_prefix(value: int, *, family: int, flag: str) -> int:
    """A persistence prefix length valid for its family."""
    limit = max_prefix(family)
    if not 1 <= value <= limit:
        raise UsageError(f"{value} is outside 1..{limit}", flag=flag)
    return value


@dataclass(frozen=True, slots=True)
class PolicyFlags:
    """The translation flags every command shares, as given; ``policy()`` checks them (errors name the flag).

    The field defaults are the flags' defaults: each command's signature takes them from ``POLICY_DEFAULTS``.
    """

    scheduler: str = "rr"
    netmask_v4: int = 32
    netmask_v6: int = 128
    node_port_range: str = "30000-32767"
    external_ip_cidrs: Sequence[str] = ()  # none honoured by default (CVE-2020-8554)
    load_balancer_ip_cidrs: Sequence[str] = ()  # none honoured by default (CVE-2020-8554)
    node_port_addresses: Sequence[str] = ()  # NodePorts on every node address by default
    affinity_scope: str = "node"  # ClientIP Services' scope without ipvsctl.io/affinity-scope: node or cluster

    def policy(self) -> Policy:
        """The translation policy these flags describe."""
        if self.scheduler not in DEFAULT_SCHEDULERS:
            choices = " ".join(sorted(DEFAULT_SCHEDULERS))
            raise UsageError(f"unknown scheduler {self.scheduler!r} (known: {choices})", flag="--scheduler")
        if self.affinity_scope not in AFFINITY_SCOPES:
            raise UsageError(f"{self.affinity_scope!r} is not node or cluster", flag="--affinity-scope")
        return Policy(
            default_scheduler=self.scheduler,
            netmask_v4=parse_prefix(self.netmask_v4, family=4, flag="--persistence-netmask-v4"),
            netmask_v6=parse_prefix(self.netmask_v6, family=6, flag="--persistence-netmask-v6"),
            node_port_range=parse_port_range(self.node_port_range),
            external_ip_cidrs=parse_cidrs(self.external_ip_cidrs, flag="--external-ip-cidr"),
            load_balancer_ip_cidrs=parse_cidrs(self.load_balancer_ip_cidrs, flag="--load-balancer-ip-cidr"),
            node_port_addresses=parse_node_port_addresses(self.node_port_addresses),
            affinity_scope=self.affinity_scope,
        )


POLICY_DEFAULTS = PolicyFlags()

MASQUERADE_BIT_DEFAULT = 14  # kube-proxy's --iptables-masquerade-bit

# Seconds after an EndpointSlice's trigger time that cluster-scope tables change (ipvsctl.affinity_switch).
AFFINITY_SWITCH_DELAY = 3.0


@dataclass(frozen=True, slots=True)
class NetfilterFlags:
    """The netfilter half's flags: on or off (``--no-netfilter``), the pod network (``--cluster-cidr``) and the
    packet-mark bit that asks for masquerade (``--masquerade-bit``). ``checked()`` validates them."""

    enabled: bool = True
    cluster_cidrs: Sequence[str] = ()
    masquerade_bit: int = MASQUERADE_BIT_DEFAULT

    def checked(self) -> NetfilterFlags:
        """The same flags with the CIDRs in canonical form (``10.1.2.3/8`` → ``10.0.0.0/8``); UsageError naming
        the flag of a bad value."""
        if not 0 <= self.masquerade_bit <= 31:
            raise UsageError(
                f"{self.masquerade_bit} is not a bit of the 32-bit packet mark (0..31)", flag="--masquerade-bit"
            )
        cidrs: list[str] = []
        for value in self.cluster_cidrs:
            try:
                cidrs.append(str(ipaddress.ip_network(value.strip(), strict=False)))
            except ValueError:
                raise UsageError(f"{value!r} is not a CIDR like 10.244.0.0/16", flag="--cluster-cidr") from None
        return NetfilterFlags(
            enabled=self.enabled, cluster_cidrs=tuple(dict.fromkeys(cidrs)), masquerade_bit=self.masquerade_bit
        )

    @property
    def cluster_families(self) -> frozenset[int]:
        """The address families the pod network is known for (ClusterIP masquerade applies to those)."""
        return frozenset(6 if ":" in cidr else 4 for cidr in self.cluster_cidrs)


NETFILTER_DEFAULTS = NetfilterFlags()


MAX_IPVS_TIMEOUT = 2_147_483
"""The longest IPVS timeout (seconds) every kernel takes, 24 days 20 hours: the kernel keeps a timeout in jiffies
in an int and refuses one over INT_MAX / HZ seconds, and HZ is at most 1000 on the architectures Kubernetes runs
on (amd64, arm64, ppc64le, s390x). Debian's kernels (HZ 250) would take four times as much."""


@dataclass(frozen=True, slots=True)
class IpvsTimeoutFlags:
    """The IPVS connection timeouts as given (``--ipvs-tcp-timeout``, ``--ipvs-tcpfin-timeout``,
    ``--ipvs-udp-timeout``; seconds, 0 keeps the kernel's, as kube-proxy's flags of the same names).
    ``checked()`` validates them."""

    tcp: int = 0
    tcp_fin: int = 0
    udp: int = 0

    def checked(self) -> IpvsTimeoutFlags:
        """The same flags; UsageError naming the flag of one outside 0..MAX_IPVS_TIMEOUT seconds."""
        for flag, value in (
            ("--ipvs-tcp-timeout", self.tcp),
            ("--ipvs-tcpfin-timeout", self.tcp_fin),
            ("--ipvs-udp-timeout", self.udp),
        ):
            if not 0 <= value <= MAX_IPVS_TIMEOUT:
                raise UsageError(
                    f"{value!r} is not a number of seconds 0..{MAX_IPVS_TIMEOUT} (0 keeps the kernel's)", flag=flag
                )
        return self


IPVS_TIMEOUT_DEFAULTS = IpvsTimeoutFlags()
