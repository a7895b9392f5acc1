"""The kernel settings the agent needs at start-up, and writing sysctls through /proc/sys.

- ``net.ipv4.vs.conntrack=1``: IPVS connections get conntrack entries (masquerading needs them for SNAT).
- ``net.ipv4.vs.expire_nodest_conn=1``: packets of a connection whose real server was deleted are
  dropped and the entry expired at once, so clients reconnect instead of hanging.
- ``net.ipv4.vs.expire_quiescent_template=1``: persistence templates of a weight-0 (draining) real
  server expire, so affine clients move on.
- ``net.ipv4.ip_forward=1``: masqueraded traffic is forwarded to the real servers.

The ``net.ipv4.vs.*`` files exist only once ``ip_vs`` is loaded, and, like ``ip_forward``, belong to the
network namespace of whoever opens them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from ipvsctl.errors import BackendError, UsageError

__all__ = ["PROC_ROOT", "STARTUP_SYSCTLS", "SysctlChange", "apply_sysctls", "startup_settings", "sysctl_path"]

PROC_ROOT = Path("/proc")
STARTUP_SYSCTLS: Mapping[str, str] = {
    "net.ipv4.vs.conntrack": "1",
    "net.ipv4.vs.expire_nodest_conn": "1",
    "net.ipv4.vs.expire_quiescent_template": "1",
    "net.ipv4.ip_forward": "1",
}


def startup_settings(skipped: Collection[str]) -> dict[str, str]:
    """The start-up sysctls less those ``--no-sysctl`` names (UsageError for a name that is not one of them)."""
    unknown = set(skipped) - set(STARTUP_SYSCTLS)
    if unknown:
        raise UsageError(f"not a start-up sysctl: {', '.join(sorted(unknown))}", flag="--no-sysctl")
    return {name: value for name, value in STARTUP_SYSCTLS.items() if name not in skipped}


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
