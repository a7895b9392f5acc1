"""The kernel settings the agent needs at start-up, and writing sysctls through /proc/sys.

- ``net.ipv4.vs.conntrack=1``: IPVS connections get conntrack entries (masquerading needs them for SNAT).
- ``net.ipv4.vs.expire_nodest_conn=1``: packets of a connection whose real server was deleted are
  dropped and the entry expired at once, so clients reconnect instead of hanging.
- ``net.ipv4.vs.expire_quiescent_template=1``: persistence templates of a weight-0 (draining) real
  server expire, so affine clients move on.
- ``net.ipv4.ip_forward=1``: masqueraded traffic is forwarded to the real servers.

With ``--strict-arp`` (kube-proxy's ``--ipvs-strict-arp``; off by default), also ``STRICT_ARP_SYSCTLS``:

- ``net.ipv4.conf.all.arp_ignore=1``: answer ARP only for an address of the interface the request came in on.
  The VIPs sit on the agent's dummy interface on every node, and by default Linux answers for any local address
  on any interface, so every node would claim a LoadBalancer IP that MetalLB (layer 2) announces from one.
- ``net.ipv4.conf.all.arp_announce=2``: never use a VIP as the source address of the node's own ARP requests,
  which would tell the LAN that this node holds it.

The kernel takes the higher of ``all`` and each interface's own value, so ``all`` covers every interface.

The ``net.ipv4.vs.*`` files exist only once ``ip_vs`` is loaded, and, like ``ip_forward``, belong to the
network namespace of whoever opens them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from ipvsctl.errors import BackendError, UsageError

__all__ = [
    "PROC_ROOT",
    "STARTUP_SYSCTLS",
    "STRICT_ARP_SYSCTLS",
    "SysctlChange",
    "apply_sysctls",
    "moves_keep_connections",
    "startup_settings",
    "sysctl_path",
]

PROC_ROOT = Path("/proc")
STARTUP_SYSCTLS: Mapping[str, str] = {
    "net.ipv4.vs.conntrack": "1",
    "net.ipv4.vs.expire_nodest_conn": "1",
    "net.ipv4.vs.expire_quiescent_template": "1",
    "net.ipv4.ip_forward": "1",
}
STRICT_ARP_SYSCTLS: Mapping[str, str] = {
    "net.ipv4.conf.all.arp_ignore": "1",
    "net.ipv4.conf.all.arp_announce": "2",
}


def startup_settings(skipped: Collection[str], *, strict_arp: bool = False) -> dict[str, str]:
    """The start-up sysctls less those ``--no-sysctl`` names (UsageError for a name that is not one of them),
    then, with ``strict_arp``, the strict-ARP ones."""
    unknown = set(skipped) - set(STARTUP_SYSCTLS)
    if unknown & set(STRICT_ARP_SYSCTLS):
        names = ", ".join(sorted(unknown & set(STRICT_ARP_SYSCTLS)))
        raise UsageError(f"{names}: set only by --strict-arp (leave that flag out instead)", flag="--no-sysctl")
    if unknown:
        raise UsageError(f"not a start-up sysctl: {', '.join(sorted(unknown))}", flag="--no-sysctl")
    settings = {name: value for name, value in STARTUP_SYSCTLS.items() if name not in skipped}
    return settings | dict(STRICT_ARP_SYSCTLS) if strict_arp else settings


@dataclass(frozen=True, slots=True)
class SysctlChange:
    """A sysctl that was set because it held another value."""

    name: str
    previous: str
    value: str


def sysctl_path(name: str, *, proc_root: Path = PROC_ROOT) -> Path:
    """The /proc/sys file of a dotted sysctl name; BackendError for a name that is not one."""
    parts = name.split(".")
    if any(part in ("", ".", "..") or "/" in part for part in parts):
        raise BackendError("not a sysctl name", target=name)
    return proc_root.joinpath("sys", *parts)


def apply_sysctls(
    *, settings: Mapping[str, str] = STARTUP_SYSCTLS, proc_root: Path = PROC_ROOT
) -> tuple[SysctlChange, ...]:
    """Set each sysctl that differs from its wanted value; return what changed, in the given order.

    Values compare by their whitespace-separated fields (/proc prints vectors with tabs).
    Raises BackendError naming the first sysctl that cannot be read or written.
    """
    changes: list[SysctlChange] = []
    for name, value in settings.items():
        path = sysctl_path(name, proc_root=proc_root)
        try:
            previous = path.read_text().strip()
            if previous.split() == value.split():
                continue
            path.write_text(f"{value}\n")
        except OSError as error:
            raise BackendError(
                f"cannot set to {value!r}: {error.strerror or error}", target=name, errno=error.errno or 0
            ) from error
        changes.append(SysctlChange(name=name, previous=previous, value=value))
    return tuple(changes)


def moves_keep_connections(*, proc_root: Path = PROC_ROOT) -> bool:
    """Whether a real server deleted and added back keeps its connections' packets flowing (after at most a
    dropped packet): true when ``net.ipv4.vs.expire_nodest_conn`` is 0. With 1 (ipvsctl's start-up setting) a
    packet that finds its server briefly gone expires its connection (measured: tests/kernel/
    test_affinity_moves_traffic.py). Unreadable (no IPVS): false."""
    try:
        return sysctl_path("net.ipv4.vs.expire_nodest_conn", proc_root=proc_root).read_text().strip() == "0"
    except OSError:
        return False
