"""The ``ipvsctl`` command line (typer): a thin shell over the core and the backends.

Exit codes of ``diff``: 0 in sync, 1 changes pending, 2 error (bad flag, unreadable
input, or an object the agent would reject).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ipvsctl import __version__
from ipvsctl.errors import IpvsctlError, UsageError
from ipvsctl.ipvsadm import parse_save, render_restore
from ipvsctl.kube.manifests import ManifestSet, load_manifests
from ipvsctl.model import Table
from ipvsctl.options import parse_cidrs, parse_node_ips, parse_port_range, policy_from_flags
from ipvsctl.plan import Ownership, plan
from ipvsctl.report import PlanContext, Problem, plan_json, plan_text
from ipvsctl.translate import NodeContext, Translation, translate

__all__ = ["app", "main"]

EXIT_IN_SYNC, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2

app = typer.Typer(
    name="ipvsctl",
    help="IPVS load-balancer node agent for Kubernetes, and the tools to inspect it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class DiffFormat(StrEnum):
    """Output formats of ``diff``."""

    TEXT = "text"
    JSON = "json"
    IPVSADM = "ipvsadm"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ipvsctl {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """IPVS load-balancer node agent for Kubernetes."""


ManifestsOpt = Annotated[
    list[str],
    typer.Option(
        "--manifests",
        "-f",
        metavar="PATH",
        help="YAML/JSON file or directory of Services, EndpointSlices and Nodes (repeatable; - for stdin).",
    ),
]
NodeOpt = Annotated[str, typer.Option("--node", metavar="NAME", help="Name of the node whose table is computed.")]
NodeIpOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--node-ip", metavar="IP", help="Node IP for NodePort VIPs (repeatable); default: the Node's addresses."
    ),
]
SchedulerOpt = Annotated[str, typer.Option("--scheduler", metavar="NAME", help="Default IPVS scheduler.")]
NetmaskV4Opt = Annotated[
    int,
    typer.Option(
        "--persistence-netmask-v4", metavar="PREFIX", help="Default ClientIP persistence prefix length for IPv4."
    ),
]
NetmaskV6Opt = Annotated[
    int,
    typer.Option(
        "--persistence-netmask-v6", metavar="PREFIX", help="Default ClientIP persistence prefix length for IPv6."
    ),
]
NodePortRangeOpt = Annotated[
    str, typer.Option("--node-port-range", metavar="LOW-HIGH", help="NodePort range of the cluster.")
]
ExternalCidrOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--external-ip-cidr",
        metavar="CIDR",
        help="CIDR in which spec.externalIPs are honoured (repeatable; default none, see CVE-2020-8554).",
    ),
]


@app.command()
def diff(
    *,
    manifests: ManifestsOpt,
    node: NodeOpt,
    node_ip: NodeIpOpt = None,
    current_save: Annotated[
        str | None,
        typer.Option(
            "--current-save", metavar="FILE", help="Current table as `ipvsadm -Sn` output (file, or - for stdin)."
        ),
    ] = None,
    owned_cidr: Annotated[
        list[str] | None,
        typer.Option(
            "--owned-cidr", metavar="CIDR", help="CIDR of VIPs the agent owns beyond the desired ones (repeatable)."
        ),
    ] = None,
    output: Annotated[DiffFormat, typer.Option("--output", "-o", help="Output format.")] = DiffFormat.TEXT,
    scheduler: SchedulerOpt = "rr",
    netmask_v4: NetmaskV4Opt = 32,
    netmask_v6: NetmaskV6Opt = 128,
    node_port_range: NodePortRangeOpt = "30000-32767",
    external_ip_cidr: ExternalCidrOpt = None,
) -> None:
    """Show what the agent would change on NODE: exit 0 in sync, 1 changes pending, 2 error."""
    try:
        policy = policy_from_flags(
            scheduler=scheduler,
            netmask_v4=netmask_v4,
            netmask_v6=netmask_v6,
            node_port_range=node_port_range,
            external_ip_cidrs=external_ip_cidr or [],
        )
        owned = parse_cidrs(owned_cidr or [], flag="--owned-cidr")
        loaded = load_manifests(manifests)
        context = _node_context(loaded, node=node, node_ips=node_ip or [])
        translation = translate(loaded.services, loaded.slices, node=context, policy=policy)
        current = _read_current(current_save)
    except IpvsctlError as error:
        _fail(error)
    ownership = Ownership(
        cidrs=owned if owned_cidr else None,
        node_addresses=frozenset(context.addresses),
        node_port_range=parse_port_range(node_port_range),
    )
    operations = plan(current, translation.table, ownership=ownership)
    problems = _problems(loaded, translation)
    report = PlanContext(
        node=node,
        owners=translation.owners,
        pods=translation.pods,
        errors=problems,
        notices=[Problem(f"Service {n.service}", n.field, n.message) for n in translation.notices],
    )
    if output is DiffFormat.JSON:
        typer.echo(json.dumps(plan_json(operations, report), indent=2))
    else:
        text = render_restore(operations) if output is DiffFormat.IPVSADM else plan_text(operations, report)
        typer.echo(text, nl=False)
        for problem in report.errors:
            typer.echo(f"error: {problem}", err=True)
        for problem in report.notices:
            typer.echo(f"notice: {problem}", err=True)
    if problems:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_CHANGES if operations else EXIT_IN_SYNC)


def _node_context(loaded: ManifestSet, *, node: str, node_ips: list[str]) -> NodeContext:
    if node_ips:
        return NodeContext(node, parse_node_ips(node_ips))
    for candidate in loaded.nodes:
        if candidate.name == node:
            return NodeContext(node, candidate.addresses)
    raise UsageError(f"node {node!r} is not in the manifests: add its Node object or pass --node-ip", flag="--node")


def _read_current(current_save: str | None) -> Table:
    if current_save is None:
        raise UsageError(
            "reading the live kernel table is not available yet: pass --current-save FILE "
            "(`ipvsadm -Sn` output; an empty file is an empty table)",
            flag="--current-save",
        )
    if current_save == "-":
        return parse_save(sys.stdin.read(), source="<stdin>")
    path = Path(current_save)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {current_save}: {error.strerror}", flag="--current-save") from None
    return parse_save(text, source=current_save)


def _problems(loaded: ManifestSet, translation: Translation) -> list[Problem]:
    problems = [Problem(f"{e.source}: {e.obj}" if e.source else e.obj, e.field, e.message) for e in loaded.errors]
    problems += [Problem(f"Service {r.service}", r.field, r.message) for r in translation.rejections]
    return problems


def _fail(error: IpvsctlError) -> NoReturn:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(EXIT_ERROR)


def main() -> None:
    """Console-script entry point."""
    app()
