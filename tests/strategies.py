"""Hypothesis strategies for model values, shared by the test suites.

Addresses come from the documentation ranges only (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and
2001:db8::/32). Generated values are ones the kernel and ipvsadm 1.31 accept: port 0 only on persistent
services, one-packet scheduling only on UDP and fwmark services, scheduler flags named for their
scheduler, weights within ipvsadm's 0..65535, lower threshold <= upper, and -g/-i real servers of a
non-fwmark service on the service port (ipvsadm forces that).
"""

from __future__ import annotations

import re
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
    "HOSTILE_FRAGMENTS",
    "HOSTILE_NUMBERS",
    "HUGE_NUMBERS",
    "IPV4_NETWORKS",
    "IPV6_NETWORK",
    "SCHED_FLAG_NAMES",
    "addresses",
    "hostile_bytes",
    "hostile_text",
    "persistences",
    "ports",
    "real_servers",
    "schedulers",
    "service_keys",
    "spliced",
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


# --- hostile input ---------------------------------------------------------------------------------

# Numbers that broke, or could break, a parser: integers past int()'s 4300-digit limit (and YAML's forms of
# them), Unicode digits (str.isdigit() is true for them), and forms int() or YAML accept that a strict reader
# must not.
HUGE_NUMBERS = ("9" * 5000, "-" + "9" * 5000, "0" * 4400 + "1", "0x" + "f" * 5000, ":".join(["59"] * 2000))
HOSTILE_NUMBERS = (
    *HUGE_NUMBERS,
    "²",
    "\u0661\u0662",
    "\uff18\uff10",
    "1_000",
    " 80",
    "-1",
    "4294967296",
)
# Other fragments: deep nesting, YAML tags and aliases, control characters and bytes that are not UTF-8.
HOSTILE_FRAGMENTS = (
    *HOSTILE_NUMBERS,
    "[" * 2000,
    "{" * 2000,
    "- " * 2000,
    "&a [*a]",
    "*a",
    "!!int",
    '!!int "²"',
    "!!bool maybe",
    "!!python/object:os.system",
    "kind: List\nitems: [{kind: List, items: []}]\n",
    "\x00",
    "\x1b[2J",
    "\r",
    "\n",
    "\u2028",
    "\ufeff",
    "\udce9",
    " ",
    "\t",
    "#",
    ":",
    "-",
    "[",
    "]",
    '"',
)
_NUMBER = re.compile(r"[0-9]+")
_TOKEN = re.compile(r"[^\s,\[\]{}]+")


@st.composite
def spliced(draw: st.DrawFn, base: str) -> str:
    """``base`` with one to four edits: a number or a token replaced, a fragment inserted, or a span cut.

    Numbers are replaced by hostile numbers; the other edits use any fragment or arbitrary characters.
    """
    text = base
    # Mostly one edit, mostly of a number: several edits tend to stop a parser at a line before the one that
    # matters, and the numbers are where readers broke.
    for _ in range(draw(st.sampled_from((1, 1, 1, 2, 4)))):
        edit = draw(st.sampled_from(("number", "number", "token", "insert", "cut")))
        if edit == "number" and (spans := [match.span() for match in _NUMBER.finditer(text)]):
            start, end = draw(st.sampled_from(spans))
            text = text[:start] + draw(st.sampled_from(HUGE_NUMBERS) | st.sampled_from(HOSTILE_NUMBERS)) + text[end:]
            continue
        if edit == "token" and (spans := [match.span() for match in _TOKEN.finditer(text)]):
            start, end = draw(st.sampled_from(spans))
            text = text[:start] + draw(st.sampled_from(HOSTILE_FRAGMENTS) | st.text(max_size=8)) + text[end:]
            continue
        at = draw(st.integers(min_value=0, max_value=len(text)))
        if edit == "cut":
            text = text[:at] + text[at + draw(st.integers(min_value=1, max_value=20)) :]
        else:
            text = text[:at] + draw(st.sampled_from(HOSTILE_FRAGMENTS) | st.text(max_size=8)) + text[at:]
    return text


def hostile_text(base: str) -> st.SearchStrategy[str]:
    """Arbitrary text, hostile fragments on their own, or ``base`` (valid input) spliced with them."""
    return st.one_of(spliced(base), spliced(base), st.text(max_size=200), st.sampled_from(HOSTILE_FRAGMENTS))


def hostile_bytes(base: str) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, or ``base`` spliced with hostile fragments in UTF-8 (where ``\udce9`` is the byte 0xe9)."""
    return st.binary(max_size=200) | spliced(base).map(lambda text: text.encode("utf-8", "surrogateescape"))
