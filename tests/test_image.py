"""The container image, checked without a container engine: the wheel it installs, and the Dockerfile's shape.

The module fixture does what the Dockerfile's builder and runtime stages do: it copies the files the builder
COPYs into an empty context, builds the project's wheel there (`pip wheel --no-deps`), and installs it into a
fresh venv with its dependencies from the package index. About 15 s with a warm pip cache; marked `image`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

import ipvsctl

pytestmark = pytest.mark.image

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction: its keyword (upper case) and the rest of its logical line."""

    keyword: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Stage:
    """A build stage: its FROM image, its name (AS ...), and its instructions after FROM."""

    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[str]:
        """The arguments of every instruction with this keyword, in order."""
        return [i.arguments for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults (before the first FROM) and the stages of a Dockerfile."""
    logical = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in logical.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    global_args: dict[str, str] = {}
    stages: list[tuple[str, str | None, list[Instruction]]] = []
    for line in lines:
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", arguments, re.IGNORECASE)
            assert match is not None, line
            stages.append((match.group(1), match.group(2), []))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM: {line}"
            name, _, default = arguments.partition("=")
            global_args[name] = default
        else:
            stages[-1][2].append(Instruction(keyword, arguments))
    return global_args, [Stage(base, name, tuple(body)) for base, name, body in stages]


def _copy_sources(stage: Stage) -> list[str]:
    """The context paths a stage COPYs (not those copied --from another stage)."""
    sources: list[str] = []
    for arguments in stage.all("COPY"):
        words = arguments.split()
        if any(word.startswith("--from=") for word in words):
            continue
        sources.extend(word for word in words[:-1] if not word.startswith("--"))
    return sources


GLOBAL_ARGS, STAGES = parse_dockerfile(DOCKERFILE.read_text())
BUILDER, FINAL = STAGES[0], STAGES[-1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built the builder stage's way from only the files the builder COPYs."""
    context = tmp_path_factory.mktemp("context")
    for source in _copy_sources(BUILDER):
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
        else:
            shutil.copy2(origin, context / source)
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-cache-dir",
            "--no-deps",
            "--wheel-dir",
            wheels,
            context,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = wheels.glob("ipvsctl-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no project checkout on its path) with the wheel and its dependencies installed."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", root], check=True, capture_output=True, timeout=120)
    subprocess.run(
        [root / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return root


def _run(venv: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run a command of the venv from an empty directory, so the checkout cannot be imported by accident."""
    return subprocess.run(
        [venv / "bin" / command[0], *command[1:]], cwd=venv, capture_output=True, text=True, timeout=120, check=False
    )


def test_wheel_is_pure_python_at_the_package_version(wheel: Path) -> None:
    """The builder's wheel is ipvsctl-<version>-py3-none-any: no compiler is needed in any stage."""
    assert wheel.name == f"ipvsctl-{PROJECT['version']}-py3-none-any.whl"


def test_installed_entrypoint_prints_the_version(venv: Path) -> None:
    """`ipvsctl --version` from the clean venv prints the package version."""
    done = _run(venv, "ipvsctl", "--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"ipvsctl {ipvsctl.__version__}"), done.stderr


def test_installed_entrypoint_lists_the_commands(venv: Path) -> None:
    """`ipvsctl --help` from the clean venv succeeds and names the agent and the inspection commands."""
    done = _run(venv, "ipvsctl", "--help")
    assert done.returncode == 0, done.stderr
    assert all(command in done.stdout for command in ("agent", "show", "diff", "affinity", "cleanup"))


def test_installed_agent_command_starts(venv: Path) -> None:
    """`ipvsctl agent --help` (the image's default command) runs from the clean venv."""
    done = _run(venv, "ipvsctl", "agent", "--help")
    assert done.returncode == 0, done.stderr


def test_every_installed_module_imports(venv: Path) -> None:
    """Each module of the wheel imports with only the declared dependencies (lazy imports included)."""
    script = (
        "import importlib, json, pkgutil, ipvsctl\n"
        "failed = {}\n"
        "for module in pkgutil.walk_packages(ipvsctl.__path__, 'ipvsctl.'):\n"
        "    try:\n"
        "        importlib.import_module(module.name)\n"
        "    except ImportError as error:\n"
        "        failed[module.name] = str(error)\n"
        "print(json.dumps(failed))\n"
    )
    done = _run(venv, "python", "-c", script)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {}


def test_builder_stage_builds_the_wheel_and_its_dependencies() -> None:
    """The first stage, `AS builder`, runs `pip wheel --no-deps` for the project, then wheels its dependencies."""
    assert BUILDER.name == "builder"
    runs = " ".join(BUILDER.all("RUN"))
    assert re.search(r"pip wheel [^&]*--no-deps [^&]*--wheel-dir /wheels \.", runs)
    assert re.search(r"pip wheel [^&]*--wheel-dir /wheels /wheels/ipvsctl-\*\.whl", runs)
    assert sorted(_copy_sources(BUILDER)) == ["README.md", "ipvsctl/", "pyproject.toml"]


def test_both_stages_use_the_slim_python_the_project_requires() -> None:
    """Builder and runtime start FROM the same python:3.11-slim image, which satisfies requires-python."""
    assert BUILDER.base == FINAL.base == "${PYTHON_IMAGE}"
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim(-\w+)?", GLOBAL_ARGS["PYTHON_IMAGE"])
    assert match is not None, GLOBAL_ARGS["PYTHON_IMAGE"]
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", PROJECT["requires-python"])
    assert minimum is not None
    assert (int(match.group(1)), int(match.group(2))) >= (int(minimum.group(1)), int(minimum.group(2)))


def test_final_stage_runs_ipvsctl_agent() -> None:
    """The runtime stage's ENTRYPOINT is the package's console script and its CMD is `agent`."""
    assert FINAL.name != "builder"
    assert [json.loads(e) for e in FINAL.all("ENTRYPOINT")] == [["ipvsctl"]]
    assert [json.loads(c) for c in FINAL.all("CMD")] == [["agent"]]
    assert "ipvsctl" in PROJECT["scripts"]


def test_final_stage_installs_the_builders_wheels_offline_without_compilers() -> None:
    """The runtime installs from the builder's wheels only (--no-index) and installs no build tools."""
    runs = " ".join(FINAL.all("RUN"))
    assert "from=builder" in runs
    assert re.search(r"pip [^&]*install [^&]*--no-index --find-links /wheels ipvsctl", runs)
    assert not re.search(r"\b(gcc|g\+\+|build-essential|python3-dev|libc6-dev)\b", runs)
    assert not _copy_sources(FINAL)


def test_final_stage_runs_as_root_for_net_admin() -> None:
    """USER is uid 0: the chart grants NET_ADMIN, which a non-root process would not hold (see the comment)."""
    assert FINAL.all("USER") == ["0:0"]


def test_image_carries_oci_labels() -> None:
    """The runtime stage labels the image with the OCI title, version, revision, source and licence."""
    labels = dict(re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', " ".join(FINAL.all("LABEL"))))
    assert {"title", "version", "revision", "source", "licenses"} <= {key.rsplit(".", 1)[1] for key in labels}
    assert labels["org.opencontainers.image.licenses"] == PROJECT["license"]
    assert labels["org.opencontainers.image.title"] == PROJECT["name"]


def test_dockerignore_admits_only_what_the_builder_copies() -> None:
    """.dockerignore excludes everything, then re-admits exactly the builder's COPY sources."""
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()[:1] not in ("", "#")
    ]
    assert patterns[0] == "*"
    admitted = sorted(p.removeprefix("!") for p in patterns if p.startswith("!"))
    assert admitted == sorted(_copy_sources(BUILDER))
