"""``ipvsctl cleanup``: remove what ipvsctl programmed (its virtual services, NodePorts, its nftables table)."""

from __future__ import annotations

import json
from dataclasses import replace

import typer

from ipvsctl.backend.base import OperationFailure
from ipvsctl.cli.app import EXIT_ERROR, app, fail
from ipvsctl.cli.backends import open_backend, open_netfilter
from ipvsctl.cli.common import (
    DEFAULT_INTERFACE,
    DEFAULT_MAX_INPUT_SIZE,
    InterfaceOpt,
    KubeconfigOpt,
    MaxInputSizeOpt,
    NodeIpOpt,
    NodePortRangeOpt,
    NoNetfilterOpt,
    OptionalManifestsOpt,
    OptionalNodeOpt,
    OwnedCidrOpt,
    check_inputs,
    max_input_bytes,
    ownership_from_flags,
    run_async,
)
from ipvsctl.cli.live import TARGET, Format, OutputOpt, optional_desired
from ipvsctl.errors import IpvsctlError
from ipvsctl.model import DeleteVirtualService, Operation
from ipvsctl.options import (
    POLICY_DEFAULTS,
    NetfilterFlags,
    parse_node_ips,
    parse_port_range,
)
from ipvsctl.plan import Ownership
from ipvsctl.report import PlanContext, Problem, plan_json, plan_text

__all__ = ["cleanup"]


@app.command()
def cleanup(
    *,
    node_ip: NodeIpOpt = None,
    node: OptionalNodeOpt = None,
    manifests: OptionalManifestsOpt = None,
    kubeconfig: KubeconfigOpt = None,
    node_port_range: NodePortRangeOpt = POLICY_DEFAULTS.node_port_range,
    owned_cidr: OwnedCidrOpt = None,
    interface: InterfaceOpt = DEFAULT_INTERFACE,
    no_netfilter: NoNetfilterOpt = False,
    output: OutputOpt = Format.TEXT,
    max_input_size: MaxInputSizeOpt = DEFAULT_MAX_INPUT_SIZE,
) -> None:
    """Remove what the agent owns (services on its interface's VIPs and node ports, the interface, and its nftables
    table ``inet ipvsctl``; never any other table).

    Node IPs (for NodePort entries) come from --node-ip, or from the Node object named by --node in
    --manifests or the cluster (--kubeconfig); without any of them, from this host's interfaces (every
    global address but the agent's interface's).
    """
    try:
        max_bytes = max_input_bytes(max_input_size)
        check_inputs([("--manifests", path) for path in manifests or []], max_bytes=max_bytes)
        desired = optional_desired(
            manifests=manifests, kubeconfig=kubeconfig, node=node, node_ip=node_ip or [], max_bytes=max_bytes
        )
        node_ips = desired.node.addresses if desired else parse_node_ips(node_ip or [])
        ownership = ownership_from_flags(
            node_ips=node_ips, owned_cidrs=owned_cidr or [], node_port_range=parse_port_range(node_port_range)
        )
        netfilter = NetfilterFlags(enabled=not no_netfilter)
        operations, failures, removed, table_removed = run_async(
            _cleanup(ownership=ownership, interface=interface, netfilter=netfilter, host_node_ports=not node_ips)
        )
    except IpvsctlError as error:
        fail(error)
    context = PlanContext(node="(this node)", errors=[Problem(str(f.operation.key), "", f.message) for f in failures])
    if output is Format.JSON:
        document = plan_json(operations, context)
        document["interface"] = {"name": interface, "deleted": removed}
        document["netfilter"] = None if table_removed is None else {"table": TARGET, "deleted": table_removed}
        typer.echo(json.dumps(document, indent=2))
    else:
        typer.echo(plan_text(operations, context).replace("changes pending", "changes applied"), nl=False)
        typer.echo(f"interface {interface}: {'deleted' if removed else 'absent, nothing to delete'}")
        if table_removed is not None:
            typer.echo(f"nftables {TARGET}: {'deleted' if table_removed else 'absent, nothing to delete'}")
    if failures:
        raise typer.Exit(EXIT_ERROR)


async def _cleanup(
    *, ownership: Ownership, interface: str, netfilter: NetfilterFlags, host_node_ports: bool
) -> tuple[list[Operation], list[OperationFailure], bool, bool | None]:
    """Delete what the agent owns, then its interface (only a dummy: open_backend refused any other kind), then
    its nftables table; whether the interface and the table (None: not asked) were there.

    With ``host_node_ports`` (no node IP given), NodePorts are those on this host's own addresses."""
    async with open_backend(interface=interface) as backend:
        state = await backend.read()
        owned = ownership.with_addresses(state.bound_addresses)
        if host_node_ports:
            owned = replace(owned, node_addresses=owned.node_addresses | await backend.host_addresses())
        operations: list[Operation] = [
            DeleteVirtualService(service.settings()) for service in state.table if owned.owns(service.key)
        ]
        report = await backend.apply(operations)
        removed = await backend.remove_interface()
    table_removed = None
    if netfilter.enabled:
        async with open_netfilter(netfilter) as table:
            table_removed = None if table is None else await table.remove()
    return operations, list(report.failures), removed, table_removed
