"""`python -m tests.e2e`: the e2e bed, from the host (`make e2e`).

Starts etcd and kube-apiserver v1.20 on the host's loopback (tests/apiserver/harness.py) and the control
channel the guest uses to stop and start the apiserver (control.py), boots the kernel lab with both ports
forwarded into the guest (lab/run.py --forward), runs the scenarios there, and prints the report. The exit
code is the guest's pytest's (77 when QEMU cannot be had here; 125 when the lab failed).

    python -m tests.e2e                       # every scenario but the slow ones
    python -m tests.e2e --slow -k affinity    # issue 20's measurement, its slow scenario included
    python -m tests.e2e -k rolling            # one scenario by name (pytest -k)
    python -m tests.e2e -k drain --keep 600   # then keep the bed up 10 minutes for tests.e2e.poke
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tests.apiserver.harness import ControlPlane, UnavailableError, find_binaries
from tests.e2e.bed import Settings
from tests.e2e.control import ControlServer
from tests.e2e.poke import DEFAULT_RESULTS
from tests.e2e.report import render, rows_from_json
from tests.e2e.workload import APISERVER_PORT, GATEWAY_IP, SERVICE_CIDR, SERVICE_CIDR6

REPO = Path(__file__).resolve().parents[2]
FORWARD_ADDRESS = "10.0.2.100"  # lab/run.py's: where a forwarded host port appears in the guest
LAB_TIMEOUT = 1800.0  # the bed took 6.5 minutes on one machine, over 15 on a slower one (docs/e2e.md)
EXIT_LAB_FAILED = 125


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m tests.e2e", description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="keyword", default="", help="only the scenarios whose test names match (pytest -k)")
    parser.add_argument("--keep", type=float, default=0.0, metavar="SECONDS", help="keep the bed up after, to poke")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="the lab's results directory")
    parser.add_argument("--timeout", type=float, default=LAB_TIMEOUT, help="seconds before the lab is killed")
    parser.add_argument("--slow", action="store_true", help="include the slow scenarios (measurements)")
    return parser.parse_args(argv)


def guest_command(keyword: str, *, slow: bool = False) -> list[str]:
    """The pytest run inside the guest (the slow scenarios only when asked for)."""
    marks = "e2e" if slow else "e2e and not slow"
    command = [str(REPO / ".venv" / "bin" / "pytest"), "-q", "-p", "no:hypothesispytest", "-m", marks, "tests/e2e"]
    return [*command, "-k", keyword] if keyword else command


def main(argv: Sequence[str]) -> int:
    """Run the bed; the guest's exit code."""
    args = parse_args(argv)
    results: Path = args.results.resolve()
    for stale in ("control-plane", "logs", "inbox", "report.json"):
        path = results / stale
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    (results / "logs").mkdir(parents=True)
    try:
        binaries = find_binaries()
    except UnavailableError as error:
        print(f"e2e: kube-apiserver or etcd cannot be had on this machine: {error}", file=sys.stderr)
        return EXIT_LAB_FAILED
    started = time.monotonic()
    plane = ControlPlane(
        binaries=binaries,
        workdir=results / "control-plane",
        service_cidrs=f"{SERVICE_CIDR},{SERVICE_CIDR6}",
        advertise_address=GATEWAY_IP,
    )
    with plane, ControlServer(plane) as control:
        kubeconfig = results / "control-plane" / "agent-kubeconfig.yaml"
        plane.write_kubeconfig(plane.user, server=f"https://{GATEWAY_IP}:{APISERVER_PORT}", path=kubeconfig)
        settings = Settings(
            apiserver_port=plane.apiserver_port,
            control_port=control.port,
            forward_address=FORWARD_ADDRESS,
            ca_file=plane.ca_file,
            admin_token=plane.admin.token,
            agent_kubeconfig=kubeconfig,
            results=results,
        )
        config = results / "e2e-config.json"
        config.write_text(settings.as_json())
        lab = [
            sys.executable if Path(sys.executable).name.startswith("python3") else "python3",
            str(REPO / "lab" / "run.py"),
            *("--results", str(results), "--timeout", str(args.timeout)),
            *("--forward", str(plane.apiserver_port), "--forward", str(control.port)),
            *("--env", f"IPVSCTL_E2E_CONFIG={config}"),
            *(("--env", f"IPVSCTL_E2E_KEEP={args.keep}") if args.keep else ()),
            "--",
            *guest_command(args.keyword, slow=args.slow),
        ]
        code = subprocess.run(lab, cwd=REPO, check=False).returncode
    report = results / "report.json"
    print(f"\ne2e: {time.monotonic() - started:.0f} s in all (host apiserver, lab boot, bed, scenarios)")
    if report.exists():
        print(render(rows_from_json(report.read_text())))
    else:
        print(f"e2e: no report (lab exit code {code}); see {results / 'console.log'} and {results / 'logs'}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
