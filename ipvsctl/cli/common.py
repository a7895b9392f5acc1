"""Options and steps the commands share: flags → policy, manifests → desired table, live ownership."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ipvsctl.backend.limits import DEFAULT_INTERFACE
from ipvsctl.errors import InputError, UsageError
from ipvsctl.inputs import DEFAULT_MAX_INPUT_BYTES, STDIN, check_path, parse_size, single_stdin
from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import ServiceKey
from ipvsctl.netfilter.plan import NetfilterPlan
from ipvsctl.options import NetfilterFlags, parse_cidrs, parse_node_ips
from ipvsctl.plan import Ownership
from ipvsctl.report import Problem
from ipvsctl.translate import NodeContext, Policy, Translation, VipRole, translate

if TYPE_CHECKING:
    from ipvsctl.kube.manifests import ManifestSet

__all__ = [
    "DEFAULT_INTERFACE",
    "DEFAULT_MAX_INPUT_SIZE",
    "AffinityScopeOpt",
    "ClusterCidrOpt",
    "Desired",
    "ExternalCidrOpt",
    "InterfaceOpt",
    "IpvsTcpFinTimeoutOpt",
    "IpvsTcpTimeoutOpt",
    "IpvsUdpTimeoutOpt",
    "KubeconfigOpt",
    "LoadBalancerCidrOpt",
    "ManifestsOpt",
    "MasqueradeBitOpt",
    "MaxInputSizeOpt",
    "NetmaskV4Opt",
    "NetmaskV6Opt",
    "NoNetfilterOpt",
    "NodeIpOpt",
    "NodeOpt",
    "NodePortAddressesOpt",
    "NodePortRangeOpt",
    "OptionalManifestsOpt",
    "OptionalNodeOpt",
    "OwnedCidrOpt",
    "SchedulerOpt",
    "StrictArpOpt",
    "check_inputs",
    "desired_and_ownership",
    "load_desired",
    "max_input_bytes",
    "naming",
    "netfilter_plan",
    "node_context",
    "ownership_from_flags",
    "refusal_problems",
    "run_async",
]

_T = TypeVar("_T")

ManifestsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--manifests",
        "-f",
        metavar="PATH",
        help="YAML/JSON file or directory of Services, EndpointSlices and Nodes (repeatable; - for stdin).",
    ),
]
KubeconfigOpt = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig",
        metavar="FILE",
        help="Read Services, EndpointSlices and the Node from this cluster instead of --manifests.",
    ),
]
OptionalManifestsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--manifests", "-f", metavar="PATH", help="Manifests to name VIPs and real servers by Service and Pod."
    ),
]
NodeOpt = Annotated[str, typer.Option("--node", metavar="NAME", help="Name of the node whose table is computed.")]
OptionalNodeOpt = Annotated[
    str | None, typer.Option("--node", metavar="NAME", help="This node's name (its Node object gives node IPs).")
]
NodeIpOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--node-ip", metavar="IP", help="Node IP for NodePort VIPs (repeatable); default: the Node's addresses."
    ),
]
SchedulerOpt = Annotated[str, typer.Option("--scheduler", metavar="NAME", help="Default IPVS scheduler.")]
AffinityScopeOpt = Annotated[
    str,
    typer.Option(
        "--affinity-scope",
        metavar="node|cluster",
        help="ClientIP affinity of Services without ipvsctl.io/affinity-scope: per node, or the same pod on every "
        "node (mh).",
    ),
]
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
LoadBalancerCidrOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--load-balancer-ip-cidr",
        metavar="CIDR",
        help="CIDR in which status.loadBalancer.ingress IPs are honoured (repeatable; default none, see "
        "CVE-2020-8554).",
    ),
]
NodePortAddressesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--nodeport-addresses",
        metavar="CIDRS",
        help="NodePorts only on node addresses inside these CIDRs, and with 'primary' on the node's primary "
        "address of each family (repeatable or comma-separated, as kube-proxy's; default: every node address).",
    ),
]
NoNetfilterOpt = Annotated[
    bool,
    typer.Option(
        "--no-netfilter",
        help="Leave out the nftables half (masquerade, VIP filter, source ranges): only for a CNI that does it.",
    ),
]
ClusterCidrOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--cluster-cidr",
        metavar="CIDR",
        help="The pod network (repeatable): ClusterIP traffic from elsewhere is masqueraded, as kube-proxy does.",
    ),
]
MasqueradeBitOpt = Annotated[
    int,
    typer.Option("--masquerade-bit", metavar="BIT", help="Packet-mark bit that asks for masquerade (0..31)."),
]
StrictArpOpt = Annotated[
    bool,
    typer.Option(
        "--strict-arp",
        help="Also set net.ipv4.conf.all.arp_ignore=1 and arp_announce=2 at start-up, so no node answers ARP for the "
        "VIPs on its interface (kube-proxy's --ipvs-strict-arp; MetalLB in layer-2 mode needs it).",
    ),
]
IpvsTcpTimeoutOpt = Annotated[
    int,
    typer.Option(
        "--ipvs-tcp-timeout",
        metavar="SECONDS",
        help="IPVS timeout of idle established TCP connections, set at start-up (0: keep the kernel's, 900).",
    ),
]
IpvsTcpFinTimeoutOpt = Annotated[
    int,
    typer.Option(
        "--ipvs-tcpfin-timeout",
        metavar="SECONDS",
        help="IPVS timeout of TCP connections after a FIN, set at start-up (0: keep the kernel's, 120).",
    ),
]
IpvsUdpTimeoutOpt = Annotated[
    int,
    typer.Option(
        "--ipvs-udp-timeout",
        metavar="SECONDS",
        help="IPVS timeout of UDP flows, set at start-up (0: keep the kernel's, 300).",
    ),
]
OwnedCidrOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--owned-cidr", metavar="CIDR", help="CIDR of VIPs the agent owns beyond those on its interface (repeatable)."
    ),
]
InterfaceOpt = Annotated[
    str, typer.Option("--interface", metavar="NAME", help="Dummy interface that holds the agent's VIPs.")
]
DEFAULT_MAX_INPUT_SIZE = "64M"
MaxInputSizeOpt = Annotated[
    str,
    typer.Option(
        "--max-input-size",
        metavar="SIZE",
        help="Largest file (or stdin) read, each: manifests, save file, connection table (bytes, or with K, M, G); "
        "a larger one is refused unread.",
    ),
]


def run_async(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(coroutine)``, without ever formatting what it returns.

    ``asyncio.run`` (Python 3.11) puts its SIGINT handler back through ``signal.getsignal`` and ``signal.signal``,
    which look the handler being replaced up in an enum and, not finding it, build a ``ValueError`` message
    with its repr: a partial holding the main task, whose repr holds the task's result (CPython issue
    112559). A read table of 10,000 virtual services took 4.2 s to format, twice, in a lab ``diff``. The main
    task here returns None, and the value comes back through a list.
    """
    import asyncio  # noqa: PLC0415 (imported when used: --help and offline commands never pay for it)

    result: list[_T] = []

    async def main() -> None:
        result.append(await coroutine)

    asyncio.run(main())
    return result[0]


def max_input_bytes(size: str) -> int:
    """``--max-input-size`` in bytes."""
    try:
        return parse_size(size)
    except ValueError as error:
        raise UsageError(str(error), flag="--max-input-size") from None


def check_inputs(inputs: Sequence[tuple[str, str]], *, max_bytes: int) -> None:
    """Refuse, before anything is read, an input that is not a regular file (or a directory of manifests) or
    ``-``, one over the size cap, and ``-`` named twice: ``inputs`` are ``(flag, path)`` pairs."""
    try:
        single_stdin(list(inputs))
        for flag, path in inputs:
            if path != STDIN:
                check_path(path, max_bytes=max_bytes, directory_ok=flag == "--manifests")
    except InputError as error:
        flag = next((flag for flag, path in inputs if path == error.source), inputs[0][0])
        raise UsageError(f"cannot read {error.source}: {error.message}", flag=flag) from None


@dataclass(frozen=True, slots=True)
class Desired:
    """The desired table of a node and what explains it."""

    node: NodeContext
    translation: Translation
    problems: tuple[Problem, ...]

    @property
    def vip_addresses(self) -> frozenset[str]:
        """Addresses the agent binds to its interface: every desired VIP that is not a node IP."""
        node_ips = set(self.node.addresses)
        return frozenset(vs.key.address for vs in self.translation.table if vs.key.address not in node_ips)


def load_objects(
    *,
    manifests: Sequence[str] | None,
    kubeconfig: str | None,
    node: str | None,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
) -> ManifestSet:
    """Objects from manifests or from a live cluster (exactly one of the two)."""
    if manifests and kubeconfig is not None:
        raise UsageError("give either --manifests or --kubeconfig, not both", flag="--kubeconfig")
    if kubeconfig is not None:
        from ipvsctl.kube.client import load_cluster  # noqa: PLC0415 (kubernetes-asyncio is slow to import)

        return run_async(load_cluster(kubeconfig, node_name=node))
    if not manifests:
        raise UsageError("is required (or --kubeconfig to read the cluster)", flag="--manifests")
    from ipvsctl.kube.manifests import load_manifests  # noqa: PLC0415 (msgspec and yaml-rs: not for --help)

    return load_manifests(manifests, max_bytes=max_bytes)


def load_desired(
    *,
    manifests: Sequence[str] | None,
    kubeconfig: str | None = None,
    node: str,
    node_ips: Sequence[str],
    policy: Policy,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
) -> Desired:
    """Manifests + flags → the node's desired table; object errors and rejections become problems."""
    loaded = load_objects(manifests=manifests, kubeconfig=kubeconfig, node=node, max_bytes=max_bytes)
    context = node_context(loaded, node=node, node_ips=node_ips)
    translation = translate(loaded.services, loaded.slices, node=context, policy=policy)
    problems = [Problem(f"{e.source}: {e.obj}" if e.source else e.obj, e.field, e.message) for e in loaded.errors]
    problems += [Problem(f"Service {r.service}", r.field, r.message) for r in translation.rejections]
    return Desired(node=context, translation=translation, problems=tuple(problems))


def desired_and_ownership(
    *,
    manifests: Sequence[str] | None,
    kubeconfig: str | None,
    node: str,
    node_ips: Sequence[str],
    owned_cidrs: Sequence[str],
    policy: Policy,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
) -> tuple[Desired, Ownership]:
    """What ``diff`` and ``apply`` both start from: the desired table and what the agent owns."""
    desired = load_desired(
        manifests=manifests, kubeconfig=kubeconfig, node=node, node_ips=node_ips, policy=policy, max_bytes=max_bytes
    )
    ownership = ownership_from_flags(
        node_ips=desired.node.addresses, owned_cidrs=owned_cidrs, node_port_range=policy.node_port_range
    )
    return desired, ownership


def node_context(loaded: ManifestSet, *, node: str, node_ips: Sequence[str]) -> NodeContext:
    """The node's IPs: ``--node-ip`` values, else its Node object's addresses; its zone from its Node object
    (topology hints are read for it), if there is one."""
    found = next((candidate for candidate in loaded.nodes if candidate.name == node), None)
    zone = found.zone if found is not None else ""
    if node_ips:
        return NodeContext(node, parse_node_ips(node_ips), zone=zone)
    if found is not None:
        return NodeContext(node, found.addresses, zone=zone)
    raise UsageError(f"node {node!r} is not in the manifests or cluster: add its Node or pass --node-ip", flag="--node")


def ownership_from_flags(
    *, node_ips: Sequence[str], owned_cidrs: Sequence[str], node_port_range: tuple[int, int]
) -> Ownership:
    """Ownership from flags (the agent's interface addresses are added when the table is read)."""
    return Ownership(
        cidrs=parse_cidrs(owned_cidrs, flag="--owned-cidr") if owned_cidrs else None,
        node_addresses=frozenset(node_ips),
        node_port_range=node_port_range,
    )


def refusal_problems(refused: Mapping[ServiceKey, str], translation: Translation) -> list[Problem]:
    """Desired VIPs that could not be claimed, as problems naming their Service and field."""
    problems = []
    for key in sorted(refused, key=ServiceKey.sort_key):
        owner = translation.owners.get(key)
        result = translation.results.get(owner) if owner is not None else None
        field = result.sources.get(key, "spec") if result is not None else "spec"
        problems.append(Problem(f"Service {owner}" if owner is not None else str(key), field, refused[key]))
    return problems


def netfilter_plan(desired: Desired, flags: NetfilterFlags) -> NetfilterPlan:
    """What the nftables table should hold for this node's desired table."""
    translation = desired.translation

    def role_of(key: ServiceKey) -> VipRole | None:
        owner = translation.owners.get(key)
        result = translation.results.get(owner) if owner is not None else None
        return None if result is None else result.roles.get(key)

    return NetfilterPlan(
        services=translation.table.services,
        role_of=role_of,
        node_addresses=lambda: desired.node.addresses,
        cluster_families=flags.cluster_families,
    )


def naming(desired: Desired | None) -> tuple[dict[ServiceKey, ObjectRef], dict[str, ObjectRef]]:
    """Service owners of VIPs and Pods of real server addresses, when manifests were given."""
    if desired is None:
        return {}, {}
    return dict(desired.translation.owners), dict(desired.translation.pods)
