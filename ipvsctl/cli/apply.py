"""``ipvsctl apply``: reconcile this node's IPVS and nftables tables with the manifests once."""

from __future__ import annotations

import json
from collections.abc import Mapping

import typer

from ipvsctl.backend.base import IpvsTimeouts, change_timeouts
from ipvsctl.backend.sysctl import apply_sysctls, moves_keep_connections, startup_settings
from ipvsctl.cli.app import EXIT_ERROR, app, fail
from ipvsctl.cli.backends import open_backend, open_netfilter
from ipvsctl.cli.common import (
    DEFAULT_INTERFACE,
    DEFAULT_MAX_INPUT_SIZE,
    AffinityScopeOpt,
    ClusterCidrOpt,
    Desired,
    ExternalCidrOpt,
    InterfaceOpt,
    IpvsTcpFinTimeoutOpt,
    IpvsTcpTimeoutOpt,
    IpvsUdpTimeoutOpt,
    KubeconfigOpt,
    LoadBalancerCidrOpt,
    ManifestsOpt,
    MasqueradeBitOpt,
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
    StrictArpOpt,
    check_inputs,
    desired_and_ownership,
    max_input_bytes,
    netfilter_plan,
    refusal_problems,
    run_async,
)
from ipvsctl.cli.live import TARGET, Format, NoSysctlOpt, OutputOpt
from ipvsctl.cli.oneshot import one_shot
from ipvsctl.errors import IpvsctlError
from ipvsctl.options import (
    MASQUERADE_BIT_DEFAULT,
    POLICY_DEFAULTS,
    IpvsTimeoutFlags,
    NetfilterFlags,
    PolicyFlags,
)
from ipvsctl.plan import Ownership
from ipvsctl.reconcile import Netfilter, SyncResult, sync
from ipvsctl.report import PlanContext, Problem, plan_json, plan_text

__all__ = ["apply"]


@app.command()
@one_shot
def apply(
    *,
    manifests: ManifestsOpt = None,
    kubeconfig: KubeconfigOpt = None,
    node: NodeOpt,
    node_ip: NodeIpOpt = None,
    owned_cidr: OwnedCidrOpt = None,
    output: OutputOpt = Format.TEXT,
    scheduler: SchedulerOpt = POLICY_DEFAULTS.scheduler,
    netmask_v4: NetmaskV4Opt = POLICY_DEFAULTS.netmask_v4,
    netmask_v6: NetmaskV6Opt = POLICY_DEFAULTS.netmask_v6,
    affinity_scope: AffinityScopeOpt = POLICY_DEFAULTS.affinity_scope,
    node_port_range: NodePortRangeOpt = POLICY_DEFAULTS.node_port_range,
    external_ip_cidr: ExternalCidrOpt = None,
    load_balancer_ip_cidr: LoadBalancerCidrOpt = None,
    nodeport_addresses: NodePortAddressesOpt = None,
    interface: InterfaceOpt = DEFAULT_INTERFACE,
    no_sysctl: NoSysctlOpt = None,
    strict_arp: StrictArpOpt = False,
    ipvs_tcp_timeout: IpvsTcpTimeoutOpt = 0,
    ipvs_tcpfin_timeout: IpvsTcpFinTimeoutOpt = 0,
    ipvs_udp_timeout: IpvsUdpTimeoutOpt = 0,
    no_netfilter: NoNetfilterOpt = False,
    cluster_cidr: ClusterCidrOpt = None,
    masquerade_bit: MasqueradeBitOpt = MASQUERADE_BIT_DEFAULT,
    max_input_size: MaxInputSizeOpt = DEFAULT_MAX_INPUT_SIZE,
) -> None:
    """Reconcile this node's IPVS table and nftables table with the manifests once, and print what was done."""
    try:
        max_bytes = max_input_bytes(max_input_size)
        check_inputs([("--manifests", path) for path in manifests or []], max_bytes=max_bytes)
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
        flags = IpvsTimeoutFlags(tcp=ipvs_tcp_timeout, tcp_fin=ipvs_tcpfin_timeout, udp=ipvs_udp_timeout).checked()
        timeouts = IpvsTimeouts(tcp=flags.tcp, tcp_fin=flags.tcp_fin, udp=flags.udp)
        desired, ownership = desired_and_ownership(
            manifests=manifests,
            kubeconfig=kubeconfig,
            node=node,
            node_ips=node_ip or [],
            owned_cidrs=owned_cidr or [],
            policy=policy,
            max_bytes=max_bytes,
        )
        sysctls = startup_settings(no_sysctl or [], strict_arp=strict_arp)
        netfilter = NetfilterFlags(
            enabled=not no_netfilter, cluster_cidrs=cluster_cidr or [], masquerade_bit=masquerade_bit
        ).checked()
        result = run_async(
            _apply(
                desired,
                ownership=ownership,
                interface=interface,
                sysctls=sysctls,
                netfilter=netfilter,
                timeouts=timeouts,
            )
        )
    except IpvsctlError as error:
        fail(error)
    _print_applied(result, desired=desired, node=node, output=output)
    if result.failures or result.refused or desired.problems:
        raise typer.Exit(EXIT_ERROR)


async def _apply(
    desired: Desired,
    *,
    ownership: Ownership,
    interface: str,
    sysctls: Mapping[str, str],
    netfilter: NetfilterFlags,
    timeouts: IpvsTimeouts,
) -> SyncResult:
    # Both checked before anything changes: a refused interface, or no nft, leaves the node as it was.
    async with open_backend(interface=interface) as backend, open_netfilter(netfilter) as table:
        apply_sysctls(settings=sysctls)
        await change_timeouts(backend, timeouts)
        return await sync(
            backend,
            desired.translation.table,
            ownership=ownership,
            bind=desired.vip_addresses,
            netfilter=None if table is None else Netfilter(table, netfilter_plan(desired, netfilter)),
            cluster_moves=moves_keep_connections(),
        )


def _print_applied(result: SyncResult, *, desired: Desired, node: str, output: Format) -> None:
    translation = desired.translation
    failures = [Problem(str(f.operation.key), type(f.operation).__name__, f.message) for f in result.failures]
    refusals = refusal_problems(result.refused, translation)
    context = PlanContext(
        node=node, owners=translation.owners, pods=translation.pods, errors=[*desired.problems, *refusals, *failures]
    )
    filtering = result.netfilter
    if output is Format.JSON:
        document = plan_json(result.operations, context)
        document["schema"] = "ipvsctl.apply/v1"
        document["attempts"] = result.attempts
        document["netfilter"] = (
            None
            if filtering is None
            else {
                "added": filtering.added,
                "deleted": filtering.deleted,
                "rewritten": filtering.rewritten,
            }
        )
        typer.echo(json.dumps(document, indent=2))
        return
    text = plan_text(result.operations, context).replace("changes pending", "changes applied")
    typer.echo(text, nl=False)
    if filtering is not None:
        written = ", table written whole" if filtering.rewritten else ""
        typer.echo(f"nftables {TARGET}: {filtering.added} elements added, {filtering.deleted} deleted{written}")
    for problem in context.errors:
        typer.echo(f"error: {problem}", err=True)
