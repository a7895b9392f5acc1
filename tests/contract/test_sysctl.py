"""Start-up sysctls written under a /proc root: what changes, what stays, and errors naming the sysctl."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipvsctl.backend.sysctl import STARTUP_SYSCTLS, SysctlChange, apply_sysctls, sysctl_path
from ipvsctl.errors import BackendError


def fake_proc(root: Path, values: dict[str, str]) -> Path:
    """A /proc tree holding the given sysctls."""
    for name, value in values.items():
        path = sysctl_path(name, proc_root=root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return root


def test_a_sysctl_name_maps_to_its_proc_file(tmp_path: Path) -> None:
    """Dots become directories under sys/."""
    assert sysctl_path("net.ipv4.vs.conntrack", proc_root=tmp_path) == tmp_path / "sys/net/ipv4/vs/conntrack"


def test_the_startup_sysctls_are_set_and_reported(tmp_path: Path) -> None:
    """Every start-up sysctl at 0 is set to 1 and reported as a change, in order."""
    root = fake_proc(tmp_path, dict.fromkeys(STARTUP_SYSCTLS, "0"))

    changes = apply_sysctls(proc_root=root)

    assert changes == tuple(SysctlChange(name=name, previous="0", value="1") for name in STARTUP_SYSCTLS)
    assert {sysctl_path(name, proc_root=root).read_text() for name in STARTUP_SYSCTLS} == {"1\n"}


def test_a_sysctl_already_set_is_left_alone(tmp_path: Path) -> None:
    """A sysctl holding the wanted value is not written and not reported."""
    root = fake_proc(tmp_path, {"net.ipv4.ip_forward": "1"})

    assert apply_sysctls(settings={"net.ipv4.ip_forward": "1"}, proc_root=root) == ()


def test_vector_values_compare_by_fields(tmp_path: Path) -> None:
    """A tab-separated value equals the same fields separated by spaces."""
    root = fake_proc(tmp_path, {"net.ipv4.ip_local_port_range": "32768\t60999"})

    assert apply_sysctls(settings={"net.ipv4.ip_local_port_range": "32768 60999"}, proc_root=root) == ()


def test_a_missing_sysctl_is_an_error_naming_it(tmp_path: Path) -> None:
    """Without ip_vs loaded its sysctls are absent: BackendError names the sysctl."""
    with pytest.raises(BackendError, match=r"net\.ipv4\.vs\.conntrack") as raised:
        apply_sysctls(settings={"net.ipv4.vs.conntrack": "1"}, proc_root=tmp_path)

    assert raised.value.errno == 2


@pytest.mark.parametrize("name", ["net..ip_forward", "net.ipv4/../x", "."], ids=["empty", "slash", "dot"])
def test_a_malformed_name_is_an_error(name: str, tmp_path: Path) -> None:
    """Names that could leave /proc/sys are refused."""
    with pytest.raises(BackendError, match="not a sysctl name"):
        sysctl_path(name, proc_root=tmp_path)
