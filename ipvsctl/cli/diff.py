"""``ipvsctl diff``: what the agent would change, against the live kernel or a saved table.

Exit codes: 0 in sync, 1 changes pending, 2 error (bad flag, unreadable input, or an
object the agent would reject — the plan for everything else is still printed).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from ipvsctl.claims import claim, presumed_held
from ipvsctl.cli.app import EXIT_CHANGES, EXIT_ERROR, EXIT_IN_SYNC, app, fail
from ipvsctl.cli.backends import open_backend, read_netfilter
from ipvsctl.cli.common import (
    DEFAULT_INTERFACE,
    DEFAULT_MAX_INPUT_SIZE,
    AffinityScopeOpt,
    ClusterCidrOpt,
    ExternalCidrOpt,
    InterfaceOpt,
    KubeconfigOpt,
    LoadBalancerCidrOpt,
    ManifestsOpt,
    MaxInputSizeOpt,
    NetmaskV4Opt,
    NetmaskV6Opt,
    NodeIpOpt,
    NodeOpt,
    NodePortAddressesOpt,
    NodePortRangeOpt,
    NoNetfilterOpt,
    OwnedCidrOpt,
    SchedulerOpt,
    check_inputs,
    desired_and_ownership,
    max_input_bytes,
    netfilter_plan,
    refusal_problems,
    run_async,
)
from ipvsctl.cli.oneshot import one_shot
from ipvsctl.cli.saved import SavedElements, read_nftables, read_save
from ipvsctl.errors import IpvsctlError, UsageError
from ipvsctl.ipvsadm import render_restore
from ipvsctl.model import Operation, Table
from ipvsctl.netfilter.elements import Element, element_changes
from ipvsctl.netfilter.listing import changes_text, element_line
from ipvsctl.netfilter.ruleset import FAMILY, TABLE
from ipvsctl.options import POLICY_DEFAULTS, NetfilterFlags, PolicyFlags, parse_node_ips
from ipvsctl.plan import Ownership, plan
from ipvsctl.report import PlanContext, Problem, plan_json, plan_text

__all__ = ["DiffFormat", "diff"]


class DiffFormat(StrEnum):
    """Output formats of ``diff``."""

    TEXT = "text"
    JSON = "json"
    IPVSADM = "ipvsadm"


@app.command()
@one_shot
def diff(
    *,
    manifests: ManifestsOpt = None,
    kubeconfig: KubeconfigOpt = None,
    node: NodeOpt,
    node_ip: NodeIpOpt = None,
    current_save: Annotated[
        str | None,
        typer.Option(
            "--current-save",
            metavar="FILE",
            help="Current table as `ipvsadm -Sn` output (file, or - for stdin); default: the live kernel.",
        ),
    ] = None,
    bound_address: Annotated[
        list[str] | None,
        typer.Option(
            "--bound-address",
            metavar="IP",
            help="With --current-save: an address on the agent's interface (`ip -br addr show ipvs0`; repeatable). "
            "Default: an address is the agent's when every saved entry at it is desired.",
        ),
    ] = None,
    owned_cidr: OwnedCidrOpt = None,
    output: Annotated[DiffFormat, typer.Option("--output", "-o", help="Output format.")] = DiffFormat.TEXT,
    scheduler: SchedulerOpt = POLICY_DEFAULTS.scheduler,
    netmask_v4: NetmaskV4Opt = POLICY_DEFAULTS.netmask_v4,
    netmask_v6: NetmaskV6Opt = POLICY_DEFAULTS.netmask_v6,
    affinity_scope: AffinityScopeOpt = POLICY_DEFAULTS.affinity_scope,
    node_port_range: NodePortRangeOpt = POLICY_DEFAULTS.node_port_range,
    external_ip_cidr: ExternalCidrOpt = None,
    load_balancer_ip_cidr: LoadBalancerCidrOpt = None,
    nodeport_addresses: NodePortAddressesOpt = None,
    interface: InterfaceOpt = DEFAULT_INTERFACE,
    current_nftables: Annotated[
        str | None,
        typer.Option(
            "--current-nftables",
            metavar="FILE",
            help="With --current-save: the node's `nft -j list table inet ipvsctl` (file, or - for stdin); "
            "without it an offline diff leaves the nftables half out.",
        ),
    ] = None,
    no_netfilter: NoNetfilterOpt = False,
    cluster_cidr: ClusterCidrOpt = None,
    max_input_size: MaxInputSizeOpt = DEFAULT_MAX_INPUT_SIZE,
) -> None:
    """Show what the agent would change on NODE: exit 0 in sync, 1 changes pending, 2 error."""
    try:
        max_bytes = max_input_bytes(max_input_size)
        given = [("--manifests", path) for path in manifests or []]
        given += [("--current-save", current_save)] if current_save else []
        given += [("--current-nftables", current_nftables)] if current_nftables else []
        check_inputs(given, max_bytes=max_bytes)
        netfilter = NetfilterFlags(enabled=not no_netfilter, cluster_cidrs=cluster_cidr or []).checked()
        policy = PolicyFlags(
            scheduler=scheduler,
            netmask_v4=netmask_v4,
            netmask_v6=netmask_v6,
            affinity_scope=affinity_scope,
            node_port_range=node_port_range,
            external_ip_cidrs=external_ip_cidr or [],
            load_balancer_ip_cidrs=load_balancer_ip_cidr or [],
            node_port_addresses=nodeport_addresses or [],
        ).policy()
        desired, ownership = desired_and_ownership(
            manifests=manifests,
            kubeconfig=kubeconfig,
            node=node,
            node_ips=node_ip or [],
            owned_cidrs=owned_cidr or [],
            policy=policy,
            max_bytes=max_bytes,
        )
        translation = desired.translation
        if current_save is None:
            if bound_address:
                raise UsageError(
                    "only with --current-save: the live interface says what it holds", flag="--bound-address"
                )
            if current_nftables is not None:
                raise UsageError("only with --current-save: the live table is read", flag="--current-nftables")
            current, ownership, elements = run_async(
                _read_live(interface=interface, ownership=ownership, netfilter=netfilter)
            )
        else:
            current = read_save(current_save, max_bytes=max_bytes)
            elements = (
                read_nftables(current_nftables, max_bytes=max_bytes)
                if current_nftables is not None and netfilter.enabled
                else None
            )
            held = parse_node_ips(bound_address, flag="--bound-address") if bound_address else None
            ownership = ownership.with_addresses(
                presumed_held(current.services, translation.table.services) if held is None else held
            )
    except IpvsctlError as error:
        fail(error)
    claims = claim(translation.table.services, present=current.services, ownership=ownership)
    operations = plan(
        current, translation.table, ownership=ownership.with_addresses(claims.taken), refused=claims.refused
    )
    refusals = refusal_problems(claims.refused, translation)
    changes = None
    if elements is not None:
        wanted = netfilter_plan(desired, netfilter)
        wanted.refresh(None, refused=claims.refused)
        changes = element_changes(wanted.elements(), elements.current)
    notices = [Problem(f"Service {n.service}", n.field, n.message) for n in translation.notices]
    if netfilter.enabled and elements is None:
        notices.append(Problem("nftables", "", "not compared: give --current-nftables with --current-save"))
    report = PlanContext(
        node=node,
        owners=translation.owners,
        pods=translation.pods,
        errors=[*desired.problems, *refusals],
        notices=notices,
    )
    _print_diff(output, operations=operations, report=report, changes=changes, elements=elements)
    if report.errors:
        raise typer.Exit(EXIT_ERROR)
    pending = bool(operations) or (changes is not None and any(changes))
    raise typer.Exit(EXIT_CHANGES if pending else EXIT_IN_SYNC)


def _print_diff(
    output: DiffFormat,
    *,
    operations: tuple[Operation, ...],
    report: PlanContext,
    changes: tuple[set[Element], set[Element]] | None,
    elements: SavedElements | None,
) -> None:
    if output is DiffFormat.JSON:
        document = plan_json(operations, report)
        document["netfilter"] = (
            None
            if changes is None or elements is None
            else {
                "table": f"{FAMILY} {TABLE}",
                "tablePresent": elements.present,
                "add": [element_line(element) for element in sorted(changes[0])],
                "delete": [element_line(element) for element in sorted(changes[1])],
            }
        )
        typer.echo(json.dumps(document, indent=2))
    else:
        text = render_restore(operations) if output is DiffFormat.IPVSADM else plan_text(operations, report)
        typer.echo(text, nl=False)
        if changes is not None and elements is not None and output is DiffFormat.TEXT:
            typer.echo(changes_text(*changes, table_present=elements.present), nl=False)
        for problem in report.errors:
            typer.echo(f"error: {problem}", err=True)
        for problem in report.notices:
            typer.echo(f"notice: {problem}", err=True)


async def _read_live(
    *, interface: str, ownership: Ownership, netfilter: NetfilterFlags
) -> tuple[Table, Ownership, SavedElements | None]:
    async with open_backend(interface=interface) as backend:
        state = await backend.read()
    found = await read_netfilter(netfilter)
    elements = None if found is None else SavedElements(found.elements, found.present)
    return state.table, ownership.with_addresses(state.bound_addresses), elements
