"""Poking at a kept bed: run a command inside one of its namespaces from the host, and see what it printed.

`python -m tests.e2e --keep SECONDS` keeps the bed up after its scenarios; meanwhile the guest runs each
command dropped into the inbox of the lab's results directory (`inbox/NNN.cmd`, JSON) and writes the answer
beside it (`NNN.out`). From the host:

    python -m tests.e2e.poke node1 'ipvsctl show --kubeconfig $KUBECONFIG --node $NODE'
    python -m tests.e2e.poke node2 'ipvsctl affinity --kubeconfig $KUBECONFIG --node $NODE'
    python -m tests.e2e.poke lb 'echo "show stat" | nc -U /run/ipvsctl-e2e/haproxy.sock'   # if nc is there
    python -m tests.e2e.poke --stop                                                        # end the keep early

A command runs with `sh -c` in the target's namespace (`guest`: the guest's root namespace), with KUBECONFIG
(the agents' kubeconfig), NODE (the target's name) and the project's venv first on PATH, for at most 120 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_RESULTS = Path(__file__).resolve().parents[2] / "lab" / "results" / "e2e"
COMMAND_TIMEOUT = 120.0
ANSWER_TIMEOUT = 180.0
STOP_FILE = "stop"


def serve(*, inbox: Path, namespaces: Mapping[str, str], env: Mapping[str, str], seconds: float) -> None:
    """Run the inbox's commands (in the guest) until `seconds` pass or a `stop` file appears."""
    inbox.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (inbox / STOP_FILE).exists():
        for request in sorted(inbox.glob("*.cmd")):
            answer = _run(json.loads(request.read_text()), namespaces=namespaces, env=env)
            request.with_suffix(".out").write_text(json.dumps(answer))
            request.unlink()
        time.sleep(0.5)


def _run(request: Mapping[str, str], *, namespaces: Mapping[str, str], env: Mapping[str, str]) -> dict[str, object]:
    target, command = request["target"], request["command"]
    if target != "guest" and target not in namespaces:
        return {
            "rc": 2,
            "stdout": "",
            "stderr": f"no target {target!r}: one of guest, {', '.join(sorted(namespaces))}\n",
        }
    argv = ["sh", "-c", command]
    if target != "guest":
        argv = ["ip", "netns", "exec", namespaces[target], *argv]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
            env={**os.environ, **env, "NODE": target},
        )
    except subprocess.TimeoutExpired:
        return {"rc": 124, "stdout": "", "stderr": f"timed out after {COMMAND_TIMEOUT:.0f} s\n"}
    return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def ask(*, inbox: Path, target: str, command: str) -> dict[str, object]:
    """Drop a command into the inbox (from the host) and wait for its answer."""
    if not inbox.is_dir():
        raise SystemExit(f"no inbox at {inbox}: is a bed kept up (python -m tests.e2e --keep SECONDS)?")
    request = inbox / f"{time.time_ns()}.cmd"
    partial = request.with_suffix(".partial")
    partial.write_text(json.dumps({"target": target, "command": command}))
    partial.rename(request)
    answer = request.with_suffix(".out")
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while not answer.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"no answer within {ANSWER_TIMEOUT:.0f} s: is the bed still up?")
        time.sleep(0.2)
    result: dict[str, object] = json.loads(answer.read_text())
    answer.unlink()
    return result


def main(argv: Sequence[str]) -> int:
    """Send one command to a kept bed and print its answer; its exit code."""
    parser = argparse.ArgumentParser(description="Run a command inside a kept e2e bed (docs/e2e.md).")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="the bed's lab results directory")
    parser.add_argument("--stop", action="store_true", help="end the keep now (the guest powers off)")
    parser.add_argument("target", nargs="?", help="node1, node2, node3, lb, client1..client5, a pod, or guest")
    parser.add_argument("command", nargs="?", help="a shell command")
    args = parser.parse_args(argv)
    inbox = args.results / "inbox"
    if args.stop:
        (inbox / STOP_FILE).write_text("")
        return 0
    if not args.target or not args.command:
        parser.error("give a target and a command")
    answer = ask(inbox=inbox, target=args.target, command=args.command)
    sys.stdout.write(str(answer["stdout"]))
    sys.stderr.write(str(answer["stderr"]))
    return int(str(answer["rc"]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
