"""The side-by-side bench inside the lab guest (issue 18): ipvsctl's agent and kube-proxy, each on its node.

    host: etcd + kube-apiserver holding S Services (bench/peer.py wrote them) ── QEMU guestfwd ──┐
    guest root namespace 192.0.2.1: the e2e bed's gateway, 192.0.2.1:6443 → the host's apiserver ┘
    LAN (tests/kernel/multinode.py): node1 192.0.2.11 runs `ipvsctl agent`, node2 192.0.2.12 kube-proxy

One proxy measures at a time, on the one emulated CPU: ipvsctl's agent starts and takes its changes; it
is then paused (SIGSTOP) while kube-proxy starts and takes its own; then it resumes, both catch up with
every change, and their tables are read and compared. Each phase is bounded in time and count. The
processes' CPU seconds and RSS come from /proc; a table is "full" when /proc/net/ip_vs in its namespace
holds every Service with exactly its endpoints; a change is "in the kernel" when a netlink GET of its
virtual service in that namespace lists the new real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.peer_cluster import (
    SERVICE_CIDR,
    Change,
    Endpoint,
    VirtualKey,
    changes,
    expected_table,
    slice_manifest,
    slice_path,
    virtual_key,
)
from bench.peer_measure import (
    Memory,
    compare_tables,
    cpu_seconds,
    memory,
    missing,
    poll_delay,
    summary,
    tally,
)
from bench.peer_proxies import KUBE_PROXY_MODULES, agent_argv, in_netns, kube_proxy_argv
from ipvsctl.backend.kernel import NetlinkBackend
from ipvsctl.model import Protocol, ServiceKey, Table
from tests.e2e.api import Api
from tests.e2e.bed import open_gateway
from tests.e2e.workload import APISERVER_PORT, GATEWAY_IP
from tests.kernel.multinode import POD_NETWORK, build_cluster
from tests.kernel.netlab import Lab, Netns, run_command

TICKS = os.sysconf("SC_CLK_TCK")
FULL_POLL = 0.5
CHANGE_GAP = 1.0  # after a change is in, before the next: ipvsctl's --min-sync-interval is 1 s after a sync


@dataclass(frozen=True, slots=True)
class GuestConfig:
    """What the host hands the guest (a JSON file named on the command line)."""

    services: int
    changes: int
    change_budget: float  # seconds each proxy's change phase may take at most
    change_timeout: float  # seconds one change may take before it counts as lost
    start_timeout: float
    apiserver_port: int
    forward_address: str
    ca_file: Path
    admin_token: str
    kubeconfig: Path
    slice_version: str
    kube_proxy: Path
    ipvsctl: Path
    kernel_root: Path
    results: Path

    @classmethod
    def load(cls, path: Path) -> GuestConfig:
        """Read the host's file."""
        data: dict[str, Any] = json.loads(path.read_text())
        fields: dict[str, Any] = {
            name: Path(value) if name in _PATHS else value
            for name, value in data.items()
            if name in cls.__dataclass_fields__
        }
        return cls(**fields)


_PATHS = {"ca_file", "kubeconfig", "kube_proxy", "ipvsctl", "kernel_root", "results"}


class Proxy:
    """One proxy process in its node's namespace: started, paused, resumed, its CPU and memory read."""

    def __init__(self, name: str, *, netns: Netns, argv: list[str], log: Path) -> None:
        self.name = name
        self.netns = netns
        self._argv = in_netns(netns.name, argv)
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        """Start it; `started` is the moment before the fork."""
        with self.log.open("ab") as sink:
            self.started = time.monotonic()
            self._process = subprocess.Popen(
                self._argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        """Its process id (`ip netns exec` execs the proxy itself)."""
        if self._process is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._process.pid

    def check_alive(self) -> None:
        """AssertionError, with the log's name, when it has exited."""
        if self._process is None or self._process.poll() is not None:
            raise AssertionError(f"{self.name} exited; see {self.log}")

    def cpu(self) -> float:
        """CPU seconds so far, its reaped children's included."""
        return cpu_seconds(Path(f"/proc/{self.pid}/stat").read_text(), ticks_per_second=TICKS)

    def memory(self) -> Memory:
        """RSS now and at its peak."""
        return memory(Path(f"/proc/{self.pid}/status").read_text())

    def pause(self) -> None:
        """SIGSTOP: it holds its table and uses no CPU while the other proxy measures."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM (after a SIGCONT), SIGKILL after 30 s."""
        if self._process is None or self._process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.resume()
            self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=30)


async def wait_full(
    proxy: Proxy, kernel: NetlinkBackend, expected: dict[Any, frozenset[Any]], *, limit: float
) -> dict[str, Any]:
    """Wait until the proxy's namespace holds the expected table; seconds since its start, or how far it got.

    Each look is a netlink read of the whole table. /proc/net/ip_vs would be cheaper, but in the lab it left
    out virtual services that netlink listed (2 of 21, and more at 100 Services) while another namespace
    held the same VIPs, so it cannot decide, nor even say when to look closer.
    """
    while True:
        proxy.check_alive()
        away = missing(proc_view((await kernel.read()).table), expected)
        elapsed = time.monotonic() - proxy.started
        if away == 0:
            return {"seconds": round(elapsed, 2)}
        if elapsed > limit:
            return {"seconds": None, "timed_out_after": round(elapsed, 1), "services_not_full": away}
        await asyncio.sleep(FULL_POLL)


def proc_view(table: Table) -> dict[VirtualKey, dict[Endpoint, None]]:
    """A model table keyed as /proc/net/ip_vs (and bench.peer_cluster) key it."""
    return {
        (key.protocol.value.upper(), key.address, key.port): {(real.address, real.port): None for real in service.reals}
        for key, service in table.services.items()
    }


def service_key(index: int) -> ServiceKey:
    """The model's key of Service `index`'s virtual service."""
    protocol, address, port = virtual_key(index)
    return ServiceKey(Protocol(protocol.lower()), address, port)


async def visible(backend: NetlinkBackend, key: ServiceKey, address: str) -> bool:
    """Whether the kernel lists `address` among the key's real servers now."""
    service = (await backend.read(only=[key])).table.services.get(key)
    return service is not None and any(real.address == address for real in service.reals)


async def run_changes(
    api: Api, proxy: Proxy, backend: NetlinkBackend, planned: list[Change], *, config: GuestConfig
) -> dict[str, Any]:
    """Write the changes one at a time, each timed from the write until it is in the proxy's kernel table."""
    latencies: list[float] = []
    lost: list[int] = []
    cpu_before, phase_started = proxy.cpu(), time.monotonic()
    done: list[Change] = []
    for change in planned:
        if time.monotonic() - phase_started > config.change_budget:
            break
        proxy.check_alive()
        changed_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = slice_manifest(
            change.index, api_version=config.slice_version, changed_at=changed_at, replaced=change.address
        )
        key = service_key(change.index)
        written = time.monotonic()
        api.merge_patch(slice_path(change.index, api_version=config.slice_version), body)
        done.append(change)
        while not await visible(backend, key, change.address):
            waited = time.monotonic() - written
            if waited > config.change_timeout:
                lost.append(change.index)
                break
            await asyncio.sleep(poll_delay(waited))
        else:
            latencies.append(time.monotonic() - written)
        await asyncio.sleep(CHANGE_GAP)
    cpu = proxy.cpu() - cpu_before
    return {
        "written": len(done),
        "lost": lost,
        "latency": summary(latencies),
        "latencies_ms": [round(value * 1000, 1) for value in latencies],
        "cpu_seconds": round(cpu, 3),
        "cpu_seconds_per_change": round(cpu / len(done), 4) if done else None,
        "phase_seconds": round(time.monotonic() - phase_started, 1),
        "budget_reached": len(done) < len(planned),
        "memory_after": memory_json(proxy.memory()),
    }


def memory_json(value: Memory) -> dict[str, float]:
    """RSS and peak as JSON."""
    return {"rss_mib": value.rss_mib, "peak_mib": value.peak_mib}


def load_modules(kernel_root: Path) -> None:
    """The modules kube-proxy checks /proc/modules for (its own modprobe cannot find the lab kernel's)."""
    run_command(["modprobe", "-a", "-d", str(kernel_root), *KUBE_PROXY_MODULES])


def namespace_extras(netns: Netns) -> dict[str, Any]:
    """Around the IPVS table: each dummy interface with its address count, and the packet-filter rules."""
    links = json.loads(netns.run("ip", "-j", "addr", "show", "type", "dummy").stdout or "[]")
    iptables = netns.run("iptables-save", check=False).stdout
    ipsets = netns.run("ipset", "list", "-t", check=False).stdout
    nft = netns.run("nft", "list", "tables", check=False).stdout
    return {
        "dummy_interfaces": {link["ifname"]: len(link.get("addr_info", [])) for link in links},
        "iptables_rules": sum(1 for line in iptables.splitlines() if line.startswith("-A ")),
        "ipsets": [line.split(":", 1)[1].strip() for line in ipsets.splitlines() if line.startswith("Name:")],
        "nft_tables": [line.strip() for line in nft.splitlines() if line.strip()],
    }


async def measure(config: GuestConfig, lab: Lab, cleanup: contextlib.ExitStack, results: dict[str, Any]) -> None:
    """The whole run, its results filled into `results` and saved as they come (a lab timeout keeps them)."""
    cluster = build_cluster(lab, nodes=2, pods_per_node=0, clients=1)
    open_gateway(
        cluster.lan, forward_address=config.forward_address, apiserver_port=config.apiserver_port, cleanup=cleanup
    )
    load_modules(config.kernel_root)
    api = Api(host=GATEWAY_IP, port=APISERVER_PORT, token=config.admin_token, ca_file=config.ca_file)
    cleanup.callback(api.close)
    api.wait_ready(timeout=60)
    logs = config.results / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ours_node, theirs_node = cluster.nodes
    cidr = str(POD_NETWORK)
    ours = Proxy(
        "ipvsctl",
        netns=ours_node.netns,
        argv=agent_argv(
            ipvsctl=config.ipvsctl, kubeconfig=config.kubeconfig, node=ours_node.name, node_ip=ours_node.ip,
            cluster_cidr=cidr,
        ),
        log=logs / "ipvsctl-agent.log",
    )  # fmt: skip
    theirs = Proxy(
        "kube-proxy",
        netns=theirs_node.netns,
        argv=kube_proxy_argv(
            binary=config.kube_proxy, kubeconfig=config.kubeconfig, node=theirs_node.name, node_ip=theirs_node.ip,
            cluster_cidr=cidr,
        ),
        log=logs / "kube-proxy.log",
    )  # fmt: skip
    for proxy in (ours, theirs):
        cleanup.callback(proxy.stop)
    ours_changes = changes(services=config.services, count=config.changes)
    theirs_changes = changes(services=config.services, count=config.changes, first=config.changes)
    async with (
        NetlinkBackend(netns=ours_node.netns.name) as ours_kernel,
        NetlinkBackend(netns=theirs_node.netns.name, interface="kube-ipvs0") as theirs_kernel,
    ):
        ours.start()
        start = await wait_full(ours, ours_kernel, expected_table(services=config.services), limit=config.start_timeout)
        results["ipvsctl"] = {
            "start_to_full_table": start,
            "cpu_seconds_at_full_table": round(ours.cpu(), 2),
            "memory_at_full_table": memory_json(ours.memory()),
        }
        save(config, results)
        results["ipvsctl"]["changes"] = await run_changes(api, ours, ours_kernel, ours_changes, config=config)
        save(config, results)
        ours.pause()
        theirs.start()
        start = await wait_full(
            theirs,
            theirs_kernel,
            expected_table(services=config.services, applied=ours_changes),
            limit=config.start_timeout,
        )
        results["kube-proxy"] = {
            "start_to_full_table": start,
            "cpu_seconds_at_full_table": round(theirs.cpu(), 2),
            "memory_at_full_table": memory_json(theirs.memory()),
        }
        save(config, results)
        if start["seconds"] is not None:
            # Both tables now hold the same API state (ipvsctl, paused, holds its changes, which kube-proxy's full
            # table includes): compared here too, so that a run cut short by the lab's timeout still compares them.
            results["tables_at_kube_proxy_start"] = await table_report(
                ours_kernel, theirs_kernel, ours_netns=ours_node.netns, theirs_netns=theirs_node.netns
            )
            save(config, results)
        results["kube-proxy"]["changes"] = await run_changes(api, theirs, theirs_kernel, theirs_changes, config=config)
        save(config, results)
        ours.resume()
        final = expected_table(services=config.services, applied=[*ours_changes, *theirs_changes])
        results["caught_up"] = {
            proxy.name: await wait_full_again(proxy, kernel, final, limit=config.start_timeout)
            for proxy, kernel in ((ours, ours_kernel), (theirs, theirs_kernel))
        }
        results["tables"] = await table_report(
            ours_kernel, theirs_kernel, ours_netns=ours_node.netns, theirs_netns=theirs_node.netns
        )
    for proxy in (ours, theirs):
        results[proxy.name]["memory_at_end"] = memory_json(proxy.memory())
        results[proxy.name]["cpu_seconds_at_end"] = round(proxy.cpu(), 2)


async def table_report(
    ours_kernel: NetlinkBackend, theirs_kernel: NetlinkBackend, *, ours_netns: Netns, theirs_netns: Netns
) -> dict[str, Any]:
    """Both namespaces' tables read now, and every difference between them (counted by kind, 20 shown)."""
    ours_table = (await ours_kernel.read()).table
    theirs_table = (await theirs_kernel.read()).table
    differences = compare_tables(ipvsctl=ours_table, kube_proxy=theirs_table)
    return {
        "ipvsctl_virtual_services": len(ours_table),
        "kube_proxy_virtual_services": len(theirs_table),
        "differences": len(differences),
        "by_kind": tally(differences),
        "examples": [vars_of(difference) for difference in differences[:20]],
        "ipvsctl_namespace": namespace_extras(ours_netns),
        "kube_proxy_namespace": namespace_extras(theirs_netns),
    }


async def wait_full_again(
    proxy: Proxy, kernel: NetlinkBackend, expected: dict[Any, frozenset[Any]], *, limit: float
) -> dict[str, Any]:
    """Wait until the proxy holds `expected` again; seconds from now, or how far it got."""
    began = time.monotonic()
    outcome = await wait_full(proxy, kernel, expected, limit=proxy_elapsed(proxy) + limit)
    outcome["waited"] = round(time.monotonic() - began, 2)
    return outcome


def proxy_elapsed(proxy: Proxy) -> float:
    """Seconds since the proxy started."""
    return time.monotonic() - proxy.started


def vars_of(difference: object) -> dict[str, str]:
    """A slotted dataclass's fields as a dict."""
    return {name: str(getattr(difference, name)) for name in getattr(difference, "__slots__", ())}


def guest_main(config_path: Path) -> int:
    """Run in the guest; write the results JSON; 0 when both proxies reached a full table."""
    config = GuestConfig.load(config_path)
    results: dict[str, Any] = {
        "services": config.services,
        "changes_planned": config.changes,
        "service_cidr": SERVICE_CIDR,
        "kernel": os.uname().release,
    }
    try:
        with contextlib.ExitStack() as cleanup:
            lab = Lab(cleanup)
            asyncio.run(measure(config, lab, cleanup, results))
    except Exception as error:  # whatever stopped the run is its result's last word, with the traceback
        results["error"] = f"{type(error).__name__}: {error}"
        traceback.print_exc()
    finally:
        save(config, results)
    if "error" in results:
        print(f"bench.peer: {results['error']}")
        return 1
    return 0


def save(config: GuestConfig, results: dict[str, Any]) -> None:
    """Write the results so far."""
    (config.results / result_name(config.services)).write_text(json.dumps(results, indent=1) + "\n")


def result_name(services: int) -> str:
    """The results file of one run."""
    return f"peer-{services}.json"
