"""What the commands on the live kernel (apply, show, affinity, cleanup) share: output formats, flags, reads."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from ipvsctl.backend.base import KernelState
from ipvsctl.backend.sysctl import STARTUP_SYSCTLS
from ipvsctl.cli.backends import open_backend
from ipvsctl.cli.common import (
    Desired,
    load_desired,
)
from ipvsctl.errors import UsageError
from ipvsctl.netfilter.ruleset import FAMILY, TABLE
from ipvsctl.translate import Policy

__all__ = ["TARGET", "Format", "NoSysctlOpt", "OutputOpt", "optional_desired", "read_kernel"]

TARGET = f"{FAMILY} {TABLE}"


class Format(StrEnum):
    """Output formats of the kernel commands."""

    TEXT = "text"
    JSON = "json"


OutputOpt = Annotated[Format, typer.Option("--output", "-o", help="Output format.")]
NoSysctlOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--no-sysctl",
        metavar="NAME",
        help="Do not set this start-up sysctl (repeatable): " + ", ".join(STARTUP_SYSCTLS),
    ),
]


def optional_desired(
    *, manifests: list[str] | None, kubeconfig: str | None, node: str | None, node_ip: list[str], max_bytes: int
) -> Desired | None:
    """The desired state, for names only, when --manifests or --kubeconfig is given (then --node is required)."""
    if not manifests and kubeconfig is None:
        return None
    if node is None:
        raise UsageError(
            "is required with --manifests or --kubeconfig (names come from this node's view)", flag="--node"
        )
    # Only names are wanted here: every externalIP and ingress IP may name a VIP.
    return load_desired(
        manifests=manifests, kubeconfig=kubeconfig, node=node, node_ips=node_ip, policy=Policy(), max_bytes=max_bytes
    )


async def read_kernel(*, interface: str) -> KernelState:
    """One read of the live IPVS table and the interface's addresses."""
    async with open_backend(interface=interface) as backend:
        return await backend.read()
