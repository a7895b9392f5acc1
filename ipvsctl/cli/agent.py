"""``ipvsctl agent``: the node agent, until SIGTERM (which leaves the kernel table in place)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from ipvsctl.cli.app import EXIT_ERROR, app, fail
from ipvsctl.cli.backends import open_backend, open_netfilter
from ipvsctl.cli.common import (
    DEFAULT_INTERFACE,
    AffinityScopeOpt,
    ClusterCidrOpt,
    ExternalCidrOpt,
    InterfaceOpt,
    IpvsTcpFinTimeoutOpt,
    IpvsTcpTimeoutOpt,
    IpvsUdpTimeoutOpt,
    LoadBalancerCidrOpt,
    MasqueradeBitOpt,
    NetmaskV4Opt,
    NetmaskV6Opt,
    NodePortAddressesOpt,
    NodePortRangeOpt,
    NoNetfilterOpt,
    SchedulerOpt,
    StrictArpOpt,
)
from ipvsctl.cli.live import NoSysctlOpt
from ipvsctl.errors import IpvsctlError
from ipvsctl.options import (
    AFFINITY_SWITCH_DELAY,
    MASQUERADE_BIT_DEFAULT,
    POLICY_DEFAULTS,
    IpvsTimeoutFlags,
    NetfilterFlags,
    PolicyFlags,
)

if TYPE_CHECKING:
    from ipvsctl.agent.config import AgentConfig
    from ipvsctl.backend.base import Backend
    from ipvsctl.backend.nft.base import NetfilterTable

__all__ = ["agent"]


class LogFormat(StrEnum):
    """Log formats: auto is JSON when stdout is not a terminal."""

    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class TrafficMetrics(StrEnum):
    """Which traffic series /metrics exports (ipvsctl/agent/traffic.py)."""

    OFF = "off"
    SERVICE = "service"
    ENDPOINT = "endpoint"


class BackendKind(StrEnum):
    """Where the table lives: the kernel, or memory (tests and dry runs)."""

    NETLINK = "netlink"
    MEMORY = "memory"


@app.command()
def agent(
    *,
    kubeconfig: Annotated[
        str | None,
        typer.Option("--kubeconfig", metavar="PATH", help="Kubeconfig file; default: the pod's service account."),
    ] = None,
    node_name: Annotated[
        str | None,
        typer.Option("--node-name", metavar="NAME", envvar="NODE_NAME", help="This node's name (env NODE_NAME)."),
    ] = None,
    interface: InterfaceOpt = DEFAULT_INTERFACE,
    scheduler: SchedulerOpt = POLICY_DEFAULTS.scheduler,
    netmask_v4: NetmaskV4Opt = POLICY_DEFAULTS.netmask_v4,
    netmask_v6: NetmaskV6Opt = POLICY_DEFAULTS.netmask_v6,
    affinity_scope: AffinityScopeOpt = POLICY_DEFAULTS.affinity_scope,
    node_port_range: NodePortRangeOpt = POLICY_DEFAULTS.node_port_range,
    external_ip_cidr: ExternalCidrOpt = None,
    load_balancer_ip_cidr: LoadBalancerCidrOpt = None,
    nodeport_addresses: NodePortAddressesOpt = None,
    min_sync_interval: Annotated[
        float, typer.Option("--min-sync-interval", metavar="SECONDS", help="Least time between two syncs.")
    ] = 1.0,
    resync_interval: Annotated[
        float, typer.Option("--resync-interval", metavar="SECONDS", help="Full resync period (repairs drift).")
    ] = 30.0,
    max_drain_seconds: Annotated[
        float,
        typer.Option("--max-drain-seconds", metavar="SECONDS", help="A draining real server is deleted after this."),
    ] = 900.0,
    affinity_switch_delay: Annotated[
        float,
        typer.Option(
            "--affinity-switch-delay",
            metavar="SECONDS",
            help="Cluster-scope affinity: endpoint changes take effect this long after their trigger time, on every "
            "node at once (0: at once; at most 60).",
        ),
    ] = AFFINITY_SWITCH_DELAY,
    health_bind: Annotated[
        str, typer.Option("--health-bind", metavar="HOST:PORT", help="Where /livez, /healthz and /readyz are served.")
    ] = "0.0.0.0:10256",
    metrics_bind: Annotated[
        str,
        typer.Option("--metrics-bind", metavar="HOST:PORT", help="Where /metrics is served (default: loopback only)."),
    ] = "127.0.0.1:10249",
    health_check_address: Annotated[
        str,
        typer.Option("--health-check-address", metavar="IP", help="Address the healthCheckNodePort servers use."),
    ] = "0.0.0.0",  # noqa: S104 (cloud load balancers probe from off-host)
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="Log format (auto: JSON when stdout is not a TTY).")
    ] = LogFormat.AUTO,
    log_level: Annotated[
        str, typer.Option("--log-level", metavar="LEVEL", help="debug, info, warning or error.")
    ] = "info",
    no_sysctl: NoSysctlOpt = None,
    strict_arp: StrictArpOpt = False,
    ipvs_tcp_timeout: IpvsTcpTimeoutOpt = 0,
    ipvs_tcpfin_timeout: IpvsTcpFinTimeoutOpt = 0,
    ipvs_udp_timeout: IpvsUdpTimeoutOpt = 0,
    no_netfilter: NoNetfilterOpt = False,
    cluster_cidr: ClusterCidrOpt = None,
    masquerade_bit: MasqueradeBitOpt = MASQUERADE_BIT_DEFAULT,
    backend: Annotated[
        BackendKind, typer.Option("--backend", help="netlink: the kernel; memory: an in-memory table (dry runs).")
    ] = BackendKind.NETLINK,
    traffic_metrics: Annotated[
        TrafficMetrics,
        typer.Option(
            "--traffic-metrics",
            help="IPVS traffic counters on /metrics: per Service port (service), also per Pod (endpoint), or none.",
        ),
    ] = TrafficMetrics.SERVICE,
    traffic_max_series: Annotated[
        int,
        typer.Option(
            "--traffic-metrics-max-series",
            metavar="N",
            help="Most traffic series exported; the rest are left out and counted.",
        ),
    ] = 20_000,
    traffic_min_age: Annotated[
        float,
        typer.Option(
            "--traffic-stats-min-age",
            metavar="SECONDS",
            help="Scrapes answer from a stats dump this recent: at most one dump per this many seconds.",
        ),
    ] = 15.0,
) -> None:
    """Run the node agent: keep this node's IPVS table equal to the cluster's Services and EndpointSlices."""
    # Imported here: the other commands (and --help) never pay for kubernetes-asyncio, aiohttp,
    # prometheus-client and structlog.
    import asyncio  # noqa: PLC0415

    import structlog  # noqa: PLC0415

    from ipvsctl.agent import agent_config  # noqa: PLC0415
    from ipvsctl.agent.logs import configure_logging  # noqa: PLC0415
    from ipvsctl.agent.supervisor import TaskFailedError  # noqa: PLC0415

    try:
        config = agent_config(
            node_name=node_name,
            kubeconfig=kubeconfig,
            interface=interface,
            policy=PolicyFlags(
                scheduler=scheduler,
                netmask_v4=netmask_v4,
                netmask_v6=netmask_v6,
                affinity_scope=affinity_scope,
                node_port_range=node_port_range,
                external_ip_cidrs=external_ip_cidr or [],
                load_balancer_ip_cidrs=load_balancer_ip_cidr or [],
                node_port_addresses=nodeport_addresses or [],
            ),
            min_sync_interval=min_sync_interval,
            resync_interval=resync_interval,
            max_drain_seconds=max_drain_seconds,
            affinity_switch_delay=affinity_switch_delay,
            health_bind=health_bind,
            metrics_bind=metrics_bind,
            health_check_address=health_check_address,
            log_format=log_format.value,
            log_level=log_level,
            no_sysctl=no_sysctl or [],
            strict_arp=strict_arp,
            backend=backend.value,
            netfilter=NetfilterFlags(
                enabled=not no_netfilter, cluster_cidrs=cluster_cidr or [], masquerade_bit=masquerade_bit
            ),
            ipvs_timeouts=IpvsTimeoutFlags(tcp=ipvs_tcp_timeout, tcp_fin=ipvs_tcpfin_timeout, udp=ipvs_udp_timeout),
            traffic_metrics=traffic_metrics.value,
            traffic_max_series=traffic_max_series,
            traffic_min_age=traffic_min_age,
        )
    except IpvsctlError as error:
        fail(error)
    configure_logging(log_format=config.log_format, level=config.log_level)
    log = structlog.get_logger("ipvsctl.agent")
    try:
        asyncio.run(run(config))
    except TaskFailedError:
        raise typer.Exit(EXIT_ERROR) from None
    except IpvsctlError as error:
        log.error("agent_failed", error=str(error))  # noqa: TRY400 (our own error: its message is the story)
        raise typer.Exit(EXIT_ERROR) from None


async def run(config: AgentConfig) -> None:
    """Open the backend (the kernel's: its interface checked, then the start-up sysctls and the IPVS timeouts
    set), connect, and run the agent until SIGTERM or SIGINT."""
    import asyncio  # noqa: PLC0415 (see agent())
    import signal  # noqa: PLC0415

    from ipvsctl.agent import NodeAgent  # noqa: PLC0415 (see agent())
    from ipvsctl.agent.events import ApiEventSink  # noqa: PLC0415
    from ipvsctl.kube.client import connect  # noqa: PLC0415

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with _kernel(config) as (table, netfilter), connect(config.kubeconfig) as api:
        node_agent = NodeAgent(
            config=config, backend=table, netfilter=netfilter, event_sink=ApiEventSink(api), freeze_heap=True
        )
        await node_agent.run(api, stop=stop)


@contextlib.asynccontextmanager
async def _kernel(config: AgentConfig) -> AsyncIterator[tuple[Backend, NetfilterTable | None]]:
    """The IPVS backend and the nftables table (None with --no-netfilter), both checked before any change."""
    import structlog  # noqa: PLC0415 (see agent())

    from ipvsctl.backend.memory import MemoryBackend  # noqa: PLC0415 (see agent())
    from ipvsctl.backend.nft.memory import MemoryNetfilter  # noqa: PLC0415

    if config.backend == BackendKind.MEMORY:
        yield MemoryBackend(), MemoryNetfilter() if config.netfilter.enabled else None
        return
    from ipvsctl.backend.base import change_timeouts  # noqa: PLC0415
    from ipvsctl.backend.sysctl import apply_sysctls  # noqa: PLC0415

    log = structlog.get_logger("ipvsctl.agent")
    # Refuses an interface that is not a dummy, and a node without nft, before anything changes.
    async with open_backend(interface=config.interface) as backend, open_netfilter(config.netfilter) as netfilter:
        for change in apply_sysctls(settings=config.sysctls):
            log.info("sysctl_set", name=change.name, previous=change.previous, value=change.value)
        previous = await change_timeouts(backend, config.ipvs_timeouts)
        if previous is not None:
            log.info("ipvs_timeouts_set", previous=str(previous), value=str(config.ipvs_timeouts.kept(previous)))
        yield backend, netfilter
