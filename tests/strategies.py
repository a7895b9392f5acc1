"""Hypothesis strategies for model values, shared by the test suites.

Addresses come from the documentation ranges only (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and
2001:db8::/32). Generated values are ones the kernel and ipvsadm 1.31 accept: port 0 only on persistent
services, one-packet scheduling only on UDP and fwmark services, scheduler flags named for their
scheduler, weights within ipvsadm's 0..65535, lower threshold <= upper, and -g/-i real servers of a
non-fwmark service on the service port (ipvsadm forces that).
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

from hypothesis import strategies as st

from ipvsctl.model import (
    DEFAULT_SCHEDULERS,
    Forwarding,
    Persistence,
    Protocol,
    RealServer,
    ServiceKey,
    Table,
    VirtualService,
    max_prefix,
)

__all__ = [
    "IPV4_NETWORKS",
    "IPV6_NETWORK",
    "SCHED_FLAG_NAMES",
    "addresses",
    "persistences",
    "ports",
    "real_servers",
    "schedulers",
    "service_keys",
    "tables",
    "virtual_services",
]

IPV4_NETWORKS = (
    IPv4Network("192.0.2.0/24"),
    IPv4Network("198.51.100.0/24"),
    IPv4Network("203.0.113.0/24"),
)
IPV6_NETWORK = IPv6Network("2001:db8::/32")

# The scheduler flags ipvsadm names for each scheduler (the others use flag-1..flag-3).
SCHED_FLAG_NAMES = {"sh": ("sh-fallback", "sh-port"), "mh": ("mh-fallback", "mh-port")}


def addresses(*, family: int | None = None) -> st.SearchStrategy[str]:
    """Canonical addresses from the documentation ranges; both families unless one is given."""
    v4 = st.one_of(*(st.ip_addresses(network=network) for network in IPV4_NETWORKS))
    v6 = st.ip_addresses(network=IPV6_NETWORK)
    if family == 4:
        return v4.map(str)
    if family == 6:
        return v6.map(str)
    return st.one_of(v4, v6).map(str)


def ports(*, allow_zero: bool = False) -> st.SearchStrategy[int]:
    """TCP/UDP/SCTP ports."""
    return st.integers(min_value=0 if allow_zero else 1, max_value=65535)


def schedulers() -> st.SearchStrategy[str]:
    """Schedulers the kernel ships."""
    return st.sampled_from(sorted(DEFAULT_SCHEDULERS))


def persistences(*, family: int) -> st.SearchStrategy[Persistence]:
    """Client affinity of a family: timeouts ipvsadm accepts, any prefix it can print."""
    return st.builds(
        Persistence,
        timeout=st.integers(min_value=1, max_value=86400 * 31),
        netmask=st.integers(min_value=1 if family == 6 else 0, max_value=max_prefix(family)),
    )


@st.composite
def service_keys(draw: st.DrawFn) -> ServiceKey:
    """Keys of both families: tcp/udp/sctp (port 0 included) or fwmark (marks across 32 bits)."""
    protocol = draw(st.sampled_from(Protocol))
    family = draw(st.sampled_from((4, 6)))
    if protocol is Protocol.FWMARK:
        return ServiceKey.fwmark(draw(st.integers(min_value=1, max_value=2**32 - 1)), family=family)
    return ServiceKey(protocol, draw(addresses(family=family)), draw(ports(allow_zero=True)))


@st.composite
def real_servers(draw: st.DrawFn, *, key: ServiceKey, thresholds: bool = True) -> RealServer:
    """A real server of the service's family; thresholds obey lower <= upper (the kernel's rule), 0 unless asked."""
    forwarding = draw(st.sampled_from(Forwarding))
    same_port = forwarding is not Forwarding.MASQ and not key.is_fwmark
    upper = draw(st.integers(min_value=0, max_value=100_000)) if thresholds else 0
    return RealServer(
        draw(addresses(family=key.family)),
        key.port if same_port else draw(ports()),
        weight=draw(st.integers(min_value=0, max_value=65535)),
        forwarding=forwarding,
        upper_threshold=upper,
        lower_threshold=draw(st.integers(min_value=0, max_value=upper)),
    )


@st.composite
def virtual_services(
    draw: st.DrawFn, *, key: ServiceKey | None = None, thresholds: bool = True, max_reals: int = 4
) -> VirtualService:
    """A virtual service with valid settings and up to ``max_reals`` distinct real servers."""
    key = key if key is not None else draw(service_keys())
    scheduler = draw(schedulers())
    persistence = draw(st.none() | persistences(family=key.family))
    if persistence is None and not key.is_fwmark and key.port == 0:
        persistence = draw(persistences(family=key.family))
    flag_names = SCHED_FLAG_NAMES.get(scheduler, ("flag-1", "flag-2", "flag-3"))
    one_packet_allowed = key.protocol in (Protocol.UDP, Protocol.FWMARK)
    reals = draw(
        st.lists(
            real_servers(key=key, thresholds=thresholds),
            max_size=max_reals,
            unique_by=lambda real: real.key,
        )
    )
    return VirtualService(
        key,
        scheduler=scheduler,
        persistence=persistence,
        sched_flags=draw(st.frozensets(st.sampled_from(flag_names))),
        one_packet=draw(st.booleans()) if one_packet_allowed else False,
        pe_name=draw(st.sampled_from(("", "sip"))),
        reals=tuple(reals),
    )


def tables(*, thresholds: bool = True, max_services: int = 5) -> st.SearchStrategy[Table]:
    """Tables of up to ``max_services`` services with distinct keys."""
    services = st.lists(
        virtual_services(thresholds=thresholds),
        max_size=max_services,
        unique_by=lambda service: service.key,
    )
    return services.map(Table.of)
