"""The bed inside the kernel lab guest: three nodes each running `ipvsctl agent`, pods, clients, haproxy.

    host: etcd + kube-apiserver (127.0.0.1), the control channel ── QEMU guestfwd ──┐
    guest root namespace 192.0.2.1 on the LAN: 192.0.2.1:6443 DNAT → 10.0.2.100:PORT ┘ (nftables, masquerade)
    LAN bridge 192.0.2.0/24 and 2001:db8:a::/64: node1..3 (.11-.13, ::11-::13), haproxy (.2), clients (.100-.104)
    node k: own IPVS table and nftables table, `ipvsctl agent` (netlink backend) on ipvs0, dual-stack pods
            behind it in 198.51.100.64(k-1)/26 and 2001:db8:b:k::/64, routes to the other nodes' pod CIDRs
            (tests/kernel/multinode.py)

Each agent runs as its own process in its node's namespace (`ip netns exec`), as the non-admin user bound to
the agent's ClusterRole (ipvsctl/agent/rbac.py), and watches the apiserver through the forward. The bed
itself writes what the control plane's controllers would: Nodes, Services, load-balancer status, and the
EndpointSlices of the pods it starts and stops (workload.py). It reads every node's table from
/proc/net/ip_vs to time convergence.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

from ipvsctl.agent.rbac import cluster_role
from tests.e2e import workload
from tests.e2e.api import Api, collection
from tests.e2e.haproxy import Backend, Haproxy, config
from tests.e2e.ipvs_proc import IpvsTable
from tests.e2e.ipvs_read import TableReader
from tests.e2e.pods import PodServers
from tests.e2e.workload import GATEWAY_IP, LB_IP, NodeInfo, PodInfo, PodState, ServiceSpec
from tests.kernel.multinode import (
    POD_NETWORK,
    POD_NETWORK6,
    Cluster,
    Node,
    Pod,
    add_pod,
    attach_caller_to_lan,
    attach_to_lan,
    build_cluster,
    remove_pod,
)
from tests.kernel.netlab import Lab, Netns, run_command

IPVSCTL = str(Path(sys.prefix) / "bin" / "ipvsctl")  # the venv running pytest holds the CLI
INTERFACE = "ipvs0"
GATEWAY_INTERFACE = "e2e-lan"
GATEWAY_TABLE = "ipvsctl_e2e_gateway"
AGENT_USER = "ipvsctl-user"  # tests/apiserver/harness.py's token user without groups
NODES = 3
CLIENTS = 5
RESYNC_INTERVAL = 10.0
# Three agents starting at once on the one emulated CPU: 40 s on one machine, 100 on another.
AGENT_READY_TIMEOUT = 300.0
POLL = 0.05
HAPROXY_SOCKET = Path("/run/ipvsctl-e2e/haproxy.sock")


@dataclass(frozen=True, slots=True)
class Settings:
    """What the host hands the guest (the JSON file named by IPVSCTL_E2E_CONFIG)."""

    apiserver_port: int  # forwarded: host 127.0.0.1:PORT is FORWARD_ADDRESS:PORT in the guest
    control_port: int
    forward_address: str
    ca_file: Path
    admin_token: str
    agent_kubeconfig: Path  # the agents' user, server https://GATEWAY_IP:APISERVER_PORT
    results: Path  # logs/, report.json, inbox/ (the lab's read-write share)

    @property
    def logs(self) -> Path:
        """Where the agents and haproxy write their output."""
        return self.results / "logs"

    @classmethod
    def load(cls, path: Path) -> Settings:
        """Read the host's settings file."""
        data = json.loads(path.read_text())
        return cls(
            apiserver_port=int(data["apiserver_port"]),
            control_port=int(data["control_port"]),
            forward_address=str(data["forward_address"]),
            ca_file=Path(data["ca_file"]),
            admin_token=str(data["admin_token"]),
            agent_kubeconfig=Path(data["agent_kubeconfig"]),
            results=Path(data["results"]),
        )

    def as_json(self) -> str:
        """The settings file's content."""
        return json.dumps(
            {
                "apiserver_port": self.apiserver_port,
                "control_port": self.control_port,
                "forward_address": self.forward_address,
                "ca_file": str(self.ca_file),
                "admin_token": self.admin_token,
                "agent_kubeconfig": str(self.agent_kubeconfig),
                "results": str(self.results),
            },
            indent=1,
        )


def http_status(host: str, port: int, path: str, *, timeout: float = 2.0) -> tuple[int, str]:
    """GET http://host:port/path from the calling thread's namespace; (status, body), 0 when nothing answered."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    except (OSError, http.client.HTTPException):
        return 0, ""
    finally:
        connection.close()


class AgentProcess:
    """`ipvsctl agent` in one node's namespace; its output appended to `log`."""

    def __init__(self, node: Node, *, kubeconfig: Path, log: Path) -> None:
        self.node = node
        self._kubeconfig = kubeconfig
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.extra_args: tuple[str, ...] = ()  # appended to the command line from the next start on

    def argv(self) -> list[str]:
        """The agent's command line."""
        return [
            *("ip", "netns", "exec", self.node.netns.name, IPVSCTL, "agent"),
            *("--node-name", self.node.name, "--kubeconfig", str(self._kubeconfig), "--interface", INTERFACE),
            *("--health-bind", f"{self.node.ip}:{workload.HEALTH_PORT}", "--metrics-bind", "127.0.0.1:10249"),
            *("--health-check-address", self.node.ip),
            *("--load-balancer-ip-cidr", workload.LOAD_BALANCER_CIDR),
            *("--cluster-cidr", str(POD_NETWORK), "--cluster-cidr", str(POD_NETWORK6)),
            *("--resync-interval", str(RESYNC_INTERVAL)),
            *("--log-format", "json", "--log-level", "debug"),  # debug: every operation applied, to tell why
            *self.extra_args,
        ]

    def start(self) -> None:
        """Start the process (the previous one must have exited)."""
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError(f"the agent of {self.node.name} is still running")
        with self._log.open("ab") as sink:
            self._process = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
            )
        self.starts += 1

    def ready(self) -> bool:
        """Whether /readyz answers 200 (the first sync is done, the watches are connected)."""
        return http_status(self.node.ip, workload.HEALTH_PORT, "/readyz")[0] == 200

    def alive(self) -> bool:
        """Whether the process runs."""
        return self._process is not None and self._process.poll() is None

    def wait_ready(self, *, timeout: float = AGENT_READY_TIMEOUT) -> float:
        """Wait until ready; the seconds it took (AssertionError past `timeout` or when the agent dies)."""
        started = time.monotonic()
        while not self.ready():
            if not self.alive():
                raise AssertionError(f"the agent of {self.node.name} exited; see {self._log}")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"the agent of {self.node.name} not ready within {timeout:.0f} s; {self._log}")
            time.sleep(0.1)
        return time.monotonic() - started

    def stop(self, sig: signal.Signals = signal.SIGTERM, *, timeout: float = 30.0) -> int:
        """Send `sig` and wait for the exit; the exit status."""
        if self._process is None:
            return 0
        self._process.send_signal(sig)
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            return self._process.wait(timeout=timeout)


def open_gateway(lan: Netns, *, forward_address: str, apiserver_port: int, cleanup: contextlib.ExitStack) -> None:
    """Put the guest's root namespace on the LAN at GATEWAY_IP and forward GATEWAY_IP:6443 to the host's
    apiserver (forwarded to `forward_address`:`apiserver_port` by the lab); undone by `cleanup`."""
    attach_caller_to_lan(lan, interface=GATEWAY_INTERFACE, address=GATEWAY_IP)
    target = f"{forward_address}:{apiserver_port}"
    match = f"ip daddr {GATEWAY_IP} tcp dport {workload.APISERVER_PORT}"
    rules = f"""table ip {GATEWAY_TABLE} {{
    chain prerouting {{ type nat hook prerouting priority dstnat; {match} dnat to {target}; }}
    chain output {{ type nat hook output priority -100; {match} dnat to {target}; }}
    chain postrouting {{ type nat hook postrouting priority srcnat; oifname "eth0" masquerade; }}
}}
"""
    run_command(["nft", "-f", "-"], input=rules)
    cleanup.callback(run_command, ["nft", "delete", "table", "ip", GATEWAY_TABLE], check=False)
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1")


@dataclass(slots=True)
class LivePod:
    """A pod of the bed: what the API says of it, its namespace, and what runs in it."""

    info: PodInfo
    pod: Pod
    servers: PodServers


class Bed:
    """The whole bed; `build` brings it up, the scenarios drive it, the Lab's cleanup takes it down."""

    def __init__(self, lab: Lab, settings: Settings, cleanup: contextlib.ExitStack) -> None:
        self.lab = lab
        self.settings = settings
        self._cleanup = cleanup
        self.cluster: Cluster
        self.api: Api
        self.slice_version = ""
        self.nodes: dict[str, NodeInfo] = {}
        self.pods: dict[str, LivePod] = {}
        self.agents: dict[str, AgentProcess] = {}
        self.haproxy: Haproxy
        self.lb: Netns
        self._next_ip: dict[str, tuple[int, int]] = {}  # per node: the next pod's IPv4 and IPv6 addresses
        self._names: dict[tuple[str, int], int] = {}
        self.timings: dict[str, float] = {}
        self._tables = cleanup.enter_context(TableReader())  # the scenarios' thread's; TableWatch has its own

    # --- building -------------------------------------------------------------------------------

    def build(self) -> None:
        """Namespaces, the gateway, the API objects, pods, agents and haproxy; ready when it returns."""
        started = time.monotonic()
        self.cluster = build_cluster(self.lab, nodes=NODES, pods_per_node=0, clients=CLIENTS)
        for index, node in enumerate(self.cluster.nodes):
            zone = workload.ZONES[index]
            self.nodes[node.name] = NodeInfo(node.name, node.ip, zone, node.pod_cidr, node.ip6, node.pod_cidr6)
            first = (IPv4Network(node.pod_cidr).network_address, IPv6Network(node.pod_cidr6).network_address)
            self._next_ip[node.name] = (int(first[0]) + 10, int(first[1]) + 10)
        self._open_gateway()
        self.api = Api(
            host=GATEWAY_IP,
            port=workload.APISERVER_PORT,
            token=self.settings.admin_token,
            ca_file=self.settings.ca_file,
        )
        self._cleanup.callback(self.api.close)
        self.api.wait_ready(timeout=60)
        self.slice_version = workload.slice_version(self.api.served_versions("discovery.k8s.io"))
        self._write_cluster_objects()
        for app, node_index in workload.INITIAL_PODS:
            self.start_pod(app, node_index, state=PodState.READY, write=False)
        self.timings["namespaces and pods"] = time.monotonic() - started
        self.write_slices({pod.info.app for pod in self.pods.values()})
        self._start_haproxy()
        agents_started = time.monotonic()
        for node in self.cluster.nodes:
            agent = AgentProcess(
                node, kubeconfig=self.settings.agent_kubeconfig, log=self.settings.logs / f"agent-{node.name}.log"
            )
            self.agents[node.name] = agent
            agent.start()
            self._cleanup.callback(agent.stop)
        for agent in self.agents.values():
            agent.wait_ready()
        self.timings["agents ready"] = time.monotonic() - agents_started
        self.timings["bed up"] = time.monotonic() - started

    def _open_gateway(self) -> None:
        """Put the guest's root namespace on the LAN and forward GATEWAY_IP:6443 to the host's apiserver."""
        open_gateway(
            self.cluster.lan,
            forward_address=self.settings.forward_address,
            apiserver_port=self.settings.apiserver_port,
            cleanup=self._cleanup,
        )

    def _write_cluster_objects(self) -> None:
        """RBAC for the agents' user, the Nodes, the Services and their load-balancer status."""
        rbac = "rbac.authorization.k8s.io/v1"
        self.api.create_or_replace(collection(rbac, "clusterroles"), dict(cluster_role("ipvsctl")))
        binding = {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "ipvsctl"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ipvsctl"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": AGENT_USER}],
        }
        self.api.create_or_replace(collection(rbac, "clusterrolebindings"), binding)
        for node in self.nodes.values():
            manifest = workload.node_manifest(node)
            self.api.create_or_replace(collection("v1", "nodes"), manifest)
            self.api.merge_patch(f"/api/v1/nodes/{node.name}/status", {"status": manifest["status"]})
        services = collection("v1", "services", namespace=workload.NAMESPACE)
        for spec in workload.SERVICES:
            self.api.create_or_replace(services, workload.service_manifest(spec))
            status = workload.ingress_status(spec)
            if status is not None:
                self.api.merge_patch(f"{services}/{spec.name}/status", status)

    def _start_haproxy(self) -> None:
        """haproxy on the LAN at LB_IP, in front of every node (seed 002)."""
        self.lb = self.lab.netns("lb")
        attach_to_lan(self.cluster.lan, self.lb, port="lan-lb", address=LB_IP, address6="2001:db8:a::2")
        backends = [
            Backend("my-service", 80, workload.MY_SERVICE.node_port, 32000, "/"),
            Backend("sample-session-affinity", 8080, workload.SAMPLE_SESSION_AFFINITY.node_port, 10256, "/healthz"),
            Backend("sample-web", 8081, workload.SAMPLE_WEB.node_port, 10256, "/healthz"),
        ]
        text = config(
            address=LB_IP,
            backends=backends,
            nodes=[(node.name, node.ip) for node in self.cluster.nodes],
            stats_socket=HAPROXY_SOCKET,
        )
        self.haproxy = Haproxy(
            self.lb,
            config_text=text,
            stats_socket=HAPROXY_SOCKET,
            workdir=HAPROXY_SOCKET.parent,
            log=self.settings.logs / "haproxy.log",
        )
        self._cleanup.callback(self.haproxy.close)

    # --- what the controllers do ----------------------------------------------------------------

    def _new_pod_name(self, app: str, node_index: int) -> str:
        used = self._names.get((app, node_index), 0)
        self._names[app, node_index] = used + 1
        return f"{app}-{node_index}{chr(ord('a') + used)}"

    def start_pod(self, app: str, node_index: int, *, state: PodState = PodState.PENDING, write: bool = True) -> str:
        """A new dual-stack pod of `app` on node `node_index` (from 1), serving at once; its name. With `write`,
        its EndpointSlices are written (a pending pod is listed not ready, as the controller does)."""
        node = self.cluster.nodes[node_index - 1]
        address, address6 = self._next_ip[node.name]
        self._next_ip[node.name] = (address + 1, address6 + 1)
        name = self._new_pod_name(app, node_index)
        pod = add_pod(self.lab, node, name=name, ip=str(IPv4Address(address)), ip6=str(IPv6Address(address6)))
        http_port = workload.HTTP_PORT if app == "sample" else None
        udp_port = workload.UDP_PORT if app == "udp-echo" else None
        servers = PodServers(pod.netns, identity=name, http_port=http_port, udp_port=udp_port)
        self._cleanup.callback(servers.close)
        self.pods[name] = LivePod(PodInfo(name, app, node.name, pod.ip, state, pod.ip6), pod, servers)
        if write:
            self.write_slices({app})
        return name

    def set_state(self, name: str, state: PodState) -> None:
        """Change a pod's state and write its EndpointSlices."""
        live = self.pods[name]
        live.info = replace(live.info, state=state)
        self.write_slices({live.info.app})

    def forget_pod(self, name: str) -> LivePod:
        """The pod object is gone: drop it from the EndpointSlices (it still runs until `stop_pod`)."""
        live = self.pods.pop(name)
        self.write_slices({live.info.app})
        return live

    def stop_pod(self, live: LivePod, *, grace: float = 10.0) -> float:
        """End a forgotten pod: its servers finish what is in flight (up to `grace`), then its namespace goes."""
        waited = live.servers.close(grace=grace)
        node = next(node for node in self.cluster.nodes if node.name == live.info.node)
        remove_pod(node, live.pod)
        return waited

    def write_slices(self, apps: set[str]) -> None:
        """Write the EndpointSlice of every Service selecting one of `apps`, from the pods now known."""
        changed_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        zones = {node.name: node.zone for node in self.nodes.values()}
        pods = [live.info for live in self.pods.values()]
        slices = collection(self.slice_version, "endpointslices", namespace=workload.NAMESPACE)
        for spec in workload.SERVICES:
            if spec.app not in apps:
                continue
            for family in spec.families:
                manifest = workload.endpoint_slice_manifest(
                    spec, pods=pods, zones=zones, api_version=self.slice_version, changed_at=changed_at, family=family
                )
                self.api.create_or_replace(slices, manifest)

    # --- looking at the nodes -------------------------------------------------------------------

    def node(self, name: str) -> Node:
        """A node of the LAN by name."""
        return next(node for node in self.cluster.nodes if node.name == name)

    def table(self, node: str) -> IpvsTable:
        """A node's IPVS table now."""
        return self._tables.read(self.node(node).netns.name)

    def pods_of(self, app: str, *, state: PodState | None = PodState.READY) -> list[PodInfo]:
        """The pods of an app (in one state, or all)."""
        return [live.info for live in self.pods.values() if live.info.app == app and state in {None, live.info.state}]

    def wait_tables(
        self, condition: Callable[[str, IpvsTable], bool], *, timeout: float = 60.0, nodes: Iterable[str] = ()
    ) -> float:
        """Wait until `condition(node, table)` holds on every node (or on `nodes`); the seconds it took
        (AssertionError past `timeout`)."""
        started = time.monotonic()
        pending = set(nodes) or set(self.nodes)
        while pending:
            pending = {node for node in pending if not condition(node, self.table(node))}
            if not pending:
                break
            if time.monotonic() - started > timeout:
                raise AssertionError(f"nodes {sorted(pending)} did not converge within {timeout:.0f} s")
            time.sleep(POLL)
        return time.monotonic() - started

    def client(self, index: int) -> Netns:
        """A client's namespace (from 0)."""
        return self.cluster.clients[index].netns


def cluster_ip_key(spec: ServiceSpec) -> tuple[str, str, int]:
    """The IPVS key of a Service's ClusterIP (its reals are every usable endpoint, whatever the policy)."""
    return spec.protocol, spec.cluster_ip, spec.port


@contextlib.contextmanager
def running_bed(settings: Settings) -> Iterator[Bed]:
    """Build the bed; tear it down after the block."""
    with contextlib.ExitStack() as cleanup:
        lab = Lab(cleanup)
        bed = Bed(lab, settings, cleanup)
        bed.build()
        yield bed
