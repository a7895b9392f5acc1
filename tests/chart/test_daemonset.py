"""The DaemonSet: one agent per node, in the host's network namespace, with the least privilege that works."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ipvsctl.backend.sysctl import STARTUP_SYSCTLS, STRICT_ARP_SYSCTLS
from tests.chart.render import container, only, pod_spec, render
from tests.chart.values import NON_DEFAULT, VALUE_SETS

AGENT_SECURITY_CONTEXT = {
    "runAsUser": 0,
    "runAsGroup": 0,
    "runAsNonRoot": False,
    "privileged": False,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _agent(values: dict[str, Any] | None = None) -> dict[str, Any]:
    agent = container(render(values), "agent")
    assert agent is not None
    return agent


def _setup(values: dict[str, Any] | None = None) -> dict[str, Any]:
    setup = container(render(values), "kernel-setup")
    assert setup is not None
    return setup


def _host_paths(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Volume name -> host path, for the hostPath volumes of the pod."""
    return {v["name"]: v["hostPath"]["path"] for v in pod_spec(render(values))["volumes"] if "hostPath" in v}


def test_pod_runs_in_the_host_network_with_cluster_dns() -> None:
    """The pod uses the host's network namespace and ClusterFirstWithHostNet DNS."""
    spec = pod_spec(render())
    assert (spec["hostNetwork"], spec["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")


def test_pod_is_node_critical_and_tolerates_every_taint() -> None:
    """system-node-critical priority and one `operator: Exists` toleration: an agent on every node."""
    spec = pod_spec(render())
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["tolerations"] == [{"operator": "Exists"}]


def test_rolling_update_replaces_one_node_at_a_time() -> None:
    """The DaemonSet updates with RollingUpdate and maxUnavailable 1."""
    strategy = only(render(), "DaemonSet")["spec"]["updateStrategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}


def test_pod_selector_matches_the_pod_labels() -> None:
    """The DaemonSet's selector selects its own pods (and only by the stable name/instance labels)."""
    daemonset = only(render(NON_DEFAULT), "DaemonSet")
    selector = daemonset["spec"]["selector"]["matchLabels"]
    labels = daemonset["spec"]["template"]["metadata"]["labels"]
    assert selector == {"app.kubernetes.io/name": "ipvsctl", "app.kubernetes.io/instance": "ipvsctl"}
    assert labels == {**labels, **selector, "team": "network"}


def test_agent_security_context_keeps_net_admin_only() -> None:
    """The agent runs as root with every capability dropped but NET_ADMIN, read-only, no escalation, seccomp."""
    assert _agent()["securityContext"] == AGENT_SECURITY_CONTEXT


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"health": {"port": 256}}, id="health-port"),
        pytest.param({"metrics": {"port": 249}}, id="metrics-port"),
        pytest.param({"agent": {"nodePortRange": "80-32767"}}, id="node-ports"),
    ],
)
def test_ports_below_1024_add_net_bind_service(values: dict[str, Any]) -> None:
    """A listening port below 1024 (health, metrics, healthCheckNodePorts) adds NET_BIND_SERVICE, nothing else."""
    assert _agent(values)["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_BIND_SERVICE"]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"agent": {"netfilter": True, "clusterCIDRs": ["10.244.0.0/16"]}}, id="netfilter"),
        pytest.param({"agent": {"netfilter": False}}, id="no-netfilter"),
        pytest.param({"agent": {"strictARP": True, "ipvsUDPTimeout": 7}}, id="strict-arp-and-timeouts"),
    ],
)
def test_netfilter_arp_and_timeouts_need_nothing_beyond_net_admin(values: dict[str, Any]) -> None:
    """nft, nf_tables netlink and IPVS_CMD_SET_CONFIG need NET_ADMIN only: the agent's context is the same."""
    assert _agent(values)["securityContext"] == AGENT_SECURITY_CONTEXT
    assert _agent(values)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_pod_seccomp_profile_is_runtime_default() -> None:
    """The pod-level securityContext sets the RuntimeDefault seccomp profile."""
    assert pod_spec(render())["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}


@pytest.mark.parametrize("values", VALUE_SETS)
def test_no_container_is_privileged_in_any_configuration(values: dict[str, Any] | None) -> None:
    """Whatever the values, no container is privileged, escalates or writes its root filesystem; no host PID/IPC."""
    spec = pod_spec(render(values))
    for each in [*spec.get("initContainers", []), *spec["containers"]]:
        context = each["securityContext"]
        assert (context["privileged"], context["allowPrivilegeEscalation"]) == (False, False), each["name"]
        assert context["readOnlyRootFilesystem"] is True, each["name"]
        assert context["capabilities"]["drop"] == ["ALL"], each["name"]
        assert set(context["capabilities"].get("add", [])) <= {"NET_ADMIN", "SYS_MODULE"}, each["name"]
    assert not {"hostPID", "hostIPC"} & set(spec)


def test_agent_mounts_no_host_path() -> None:
    """The agent's only volume is its in-memory /tmp, even with module loading on."""
    own = {**NON_DEFAULT, "extraVolumeMounts": []}  # what the chart mounts, not what a user adds
    assert _agent(own)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_node_name_comes_from_the_downward_api() -> None:
    """NODE_NAME is the pod's spec.nodeName."""
    env = {e["name"]: e for e in _agent()["env"]}
    assert env["NODE_NAME"] == {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}


def test_api_server_address_overrides_the_in_cluster_service() -> None:
    """apiServer.host/port become KUBERNETES_SERVICE_HOST/PORT; by default neither is set."""
    env = {e["name"]: e.get("value") for e in _agent({"apiServer": {"host": "192.0.2.10", "port": 443}})["env"]}
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("192.0.2.10", "443")
    assert {e["name"] for e in _agent()["env"]} == {"NODE_NAME"}


def test_probes_use_livez_and_readyz_on_the_health_port() -> None:
    """Liveness GETs /livez (not /healthz, which fails on a leaving Node) and readiness /readyz, on port health."""
    agent = _agent({"health": {"port": 20256}})
    ports = {p["name"]: p["containerPort"] for p in agent["ports"]}
    assert agent["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
    assert agent["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert ports == {"health": 20256, "metrics": 10249}


def test_agent_has_requests_and_a_memory_limit() -> None:
    """CPU and memory requests and a memory limit are set by default (no CPU limit: no throttling)."""
    resources = _agent()["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"memory"}


def test_init_container_writes_the_agents_startup_sysctls() -> None:
    """kernel-setup writes exactly ipvsctl's STARTUP_SYSCTLS through the host's /proc/sys/net."""
    script = _setup()["args"][0]
    match = re.search(r"^for setting in (.+); do$", script, re.MULTILINE)
    assert match is not None, script
    assert dict(s.split("=", 1) for s in match.group(1).split()) == dict(STARTUP_SYSCTLS)
    assert {"name": "host-proc-sys-net", "mountPath": "/host/proc/sys/net"} in _setup()["volumeMounts"]


def test_init_script_sets_each_sysctl_under_the_mount(tmp_path: Path) -> None:
    """Run by sh against a stand-in /host/proc/sys, kernel-setup loads ip_vs first, then writes every value."""
    sys_root, bin_dir = tmp_path / "sys", tmp_path / "bin"
    for name in STARTUP_SYSCTLS:
        sysctl = sys_root.joinpath(*name.split("."))
        sysctl.parent.mkdir(parents=True, exist_ok=True)
        sysctl.write_text("0\n")
    bin_dir.mkdir()
    stub = bin_dir / "ipvsctl"
    stub.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "ipvsctl-called"}\n')
    stub.chmod(0o755)
    script = _setup()["args"][0].replace("/host/proc/sys", str(sys_root))
    done = subprocess.run(
        ["/bin/sh", "-c", script], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ipvsctl-called").read_text() == "show --interface=ipvs0\n"
    assert {n: sys_root.joinpath(*n.split(".")).read_text() for n in STARTUP_SYSCTLS} == {
        n: f"{v}\n" for n, v in STARTUP_SYSCTLS.items()
    }
    assert "sysctl net.ipv4.ip_forward: 0 -> 1" in done.stdout


def test_skipped_sysctls_are_left_alone() -> None:
    """sysctls.skip removes a sysctl from kernel-setup's list; the agent still writes none itself."""
    values = {"sysctls": {"skip": ["net.ipv4.ip_forward"]}}
    script = _setup(values)["args"][0]
    assert "net.ipv4.ip_forward" not in script
    assert "net.ipv4.vs.conntrack=1" in script


def _init_sysctls(values: dict[str, Any] | None = None) -> dict[str, str]:
    script = _setup(values)["args"][0]
    match = re.search(r"^for setting in (.+); do$", script, re.MULTILINE)
    assert match is not None, script
    return dict(s.split("=", 1) for s in match.group(1).split())


def test_strict_arp_adds_arp_ignore_and_arp_announce_to_kernel_setup() -> None:
    """agent.strictARP: kernel-setup writes ipvsctl's STRICT_ARP_SYSCTLS after the start-up ones."""
    assert _init_sysctls({"agent": {"strictARP": True}}) == {**STARTUP_SYSCTLS, **STRICT_ARP_SYSCTLS}


def test_strict_arp_alone_needs_no_capability_in_kernel_setup() -> None:
    """With every IPVS sysctl skipped, writing the arp_* ones (and ip_forward) needs no capability."""
    ipvs = [name for name in STARTUP_SYSCTLS if name.startswith("net.ipv4.vs.")]
    setup = _setup({"agent": {"strictARP": True}, "sysctls": {"skip": ipvs}})
    assert setup["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "net.ipv4.conf.all.arp_ignore=1" in setup["args"][0]


def test_init_script_sets_the_strict_arp_sysctls(tmp_path: Path) -> None:
    """Run by sh against a stand-in /host/proc/sys, kernel-setup writes arp_ignore 1 and arp_announce 2."""
    sys_root, bin_dir = tmp_path / "sys", tmp_path / "bin"
    for name in [*STARTUP_SYSCTLS, *STRICT_ARP_SYSCTLS]:
        sysctl = sys_root.joinpath(*name.split("."))
        sysctl.parent.mkdir(parents=True, exist_ok=True)
        sysctl.write_text("0\n")
    bin_dir.mkdir()
    (bin_dir / "ipvsctl").write_text("#!/bin/sh\n")
    (bin_dir / "ipvsctl").chmod(0o755)
    script = _setup({"agent": {"strictARP": True}})["args"][0].replace("/host/proc/sys", str(sys_root))
    done = subprocess.run(
        ["/bin/sh", "-c", script], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert {n: sys_root.joinpath(*n.split(".")).read_text() for n in STRICT_ARP_SYSCTLS} == {
        "net.ipv4.conf.all.arp_ignore": "1\n",
        "net.ipv4.conf.all.arp_announce": "2\n",
    }


def test_strict_arp_without_kernel_setup_leaves_the_check_to_the_agent() -> None:
    """sysctls.mode none with agent.strictARP: no init container, and the agent gets --strict-arp (it checks them)."""
    values = {"sysctls": {"mode": "none"}, "agent": {"strictARP": True}}
    assert container(render(values), "kernel-setup") is None
    assert "--strict-arp" in _agent(values)["args"]


def test_agent_never_writes_sysctls_itself() -> None:
    """The agent gets --no-sysctl for every start-up sysctl: its /proc/sys is read-only."""
    args = _agent()["args"]
    assert {a.removeprefix("--no-sysctl=") for a in args if a.startswith("--no-sysctl=")} == set(STARTUP_SYSCTLS)


def test_init_container_has_net_admin_only_to_load_ip_vs() -> None:
    """kernel-setup gets NET_ADMIN (for the netlink request that loads ip_vs) and no other capability."""
    assert _setup()["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN"]}


def test_init_container_without_ipvs_sysctls_has_no_capability() -> None:
    """Writing only net.ipv4.ip_forward needs root's file access, not a capability."""
    ipvs = [name for name in STARTUP_SYSCTLS if name.startswith("net.ipv4.vs.")]
    setup = _setup({"sysctls": {"skip": ipvs}})
    assert setup["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "ipvsctl show" not in setup["args"][0]


def test_sysctls_mode_none_mounts_nothing_from_the_host() -> None:
    """With sysctls.mode=none and no module loading there is no init container and no hostPath at all."""
    values = {"sysctls": {"mode": "none"}}
    assert container(render(values), "kernel-setup") is None
    assert _host_paths(values) == {}


def test_host_proc_sys_net_is_the_only_host_path_by_default() -> None:
    """By default the pod mounts only the host's /proc/sys/net (not /proc/sys, not /lib/modules)."""
    assert _host_paths() == {"host-proc-sys-net": "/proc/sys/net"}


def test_module_loading_mounts_lib_modules_read_only_with_sys_module() -> None:
    """modules.load adds /lib/modules (read-only) and SYS_MODULE to kernel-setup, and modprobes the scheduler."""
    values = {"modules": {"load": True}, "agent": {"scheduler": "mh"}}
    setup = _setup(values)
    assert _host_paths(values)["lib-modules"] == "/lib/modules"
    assert {"name": "lib-modules", "mountPath": "/lib/modules", "readOnly": True} in setup["volumeMounts"]
    assert "SYS_MODULE" in setup["securityContext"]["capabilities"]["add"]
    assert re.search(r"^modprobe -a ip_vs .*\bip_vs_mh$", setup["args"][0], re.MULTILINE)
