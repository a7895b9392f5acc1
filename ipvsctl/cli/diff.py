"""``ipvsctl diff``: what the agent would change, against the live kernel or a saved table.

Exit codes: 0 in sync, 1 changes pending, 2 error (bad flag, unreadable input, or an
object the agent would reject — the plan for everything else is still printed).
"""

from __future__ import annotations

import asyncio
import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

from ipvsctl.claims import claim, presumed_held
from ipvsctl.cli.app import EXIT_CHANGES, EXIT_ERROR, EXIT_IN_SYNC, app, fail
from ipvsctl.cli.backends import open_backend
from ipvsctl.cli.common import (
    DEFAULT_INTERFACE,
    DEFAULT_MAX_INPUT_SIZE,
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
    NodePortRangeOpt,
    OwnedCidrOpt,
    SchedulerOpt,
    check_inputs,
    desired_and_ownership,
    max_input_bytes,
    refusal_problems,
)
from ipvsctl.errors import InputError, IpvsctlError, UsageError
from ipvsctl.inputs import STDIN, read_input
from ipvsctl.ipvsadm import parse_save, render_restore
from ipvsctl.model import Table
from ipvsctl.options import POLICY_DEFAULTS, PolicyFlags, parse_node_ips
from ipvsctl.plan import Ownership, plan
from ipvsctl.report import PlanContext, Problem, plan_json, plan_text

__all__ = ["DiffFormat", "diff"]


class DiffFormat(StrEnum):
    """Output formats of ``diff``."""

    TEXT = "text"
    JSON = "json"
    IPVSADM = "ipvsadm"


@app.command()
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
    node_port_range: NodePortRangeOpt = POLICY_DEFAULTS.node_port_range,
    external_ip_cidr: ExternalCidrOpt = None,
    load_balancer_ip_cidr: LoadBalancerCidrOpt = None,
    interface: InterfaceOpt = DEFAULT_INTERFACE,
    max_input_size: MaxInputSizeOpt = DEFAULT_MAX_INPUT_SIZE,
) -> None:
    """Show what the agent would change on NODE: exit 0 in sync, 1 changes pending, 2 error."""
    try:
        max_bytes = max_input_bytes(max_input_size)
        given = [("--manifests", path) for path in manifests or []]
        check_inputs([*given, *([("--current-save", current_save)] if current_save else [])], max_bytes=max_bytes)
        policy = PolicyFlags(
            scheduler=scheduler,
            netmask_v4=netmask_v4,
            netmask_v6=netmask_v6,
            node_port_range=node_port_range,
            external_ip_cidrs=external_ip_cidr or [],
            load_balancer_ip_cidrs=load_balancer_ip_cidr or [],
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
            current, ownership = asyncio.run(_read_live(interface=interface, ownership=ownership))
        else:
            current = _read_save(current_save, max_bytes=max_bytes)
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
    report = PlanContext(
        node=node,
        owners=translation.owners,
        pods=translation.pods,
        errors=[*desired.problems, *refusals],
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
    if report.errors:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_CHANGES if operations else EXIT_IN_SYNC)


async def _read_live(*, interface: str, ownership: Ownership) -> tuple[Table, Ownership]:
    async with open_backend(interface=interface) as backend:
        state = await backend.read()
    return state.table, ownership.with_addresses(state.bound_addresses)


def _read_save(current_save: str, *, max_bytes: int) -> Table:
    try:
        data = read_input(current_save, max_bytes=max_bytes, stdin=sys.stdin.buffer)
    except InputError as error:
        raise UsageError(f"cannot read {error.source}: {error.message}", flag="--current-save") from None
    # parse_save names the line of a byte that is not UTF-8
    return parse_save(data, source="<stdin>" if current_save == STDIN else current_save)
