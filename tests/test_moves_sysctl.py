"""moves_keep_connections: the node's net.ipv4.vs.expire_nodest_conn decides whether cluster-scope moves are safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipvsctl.backend.sysctl import moves_keep_connections


@pytest.mark.parametrize(("value", "safe"), [("0\n", True), ("1\n", False), ("2\n", False)], ids=["0", "1", "2"])
def test_only_0_keeps_connections_through_a_move(tmp_path: Path, value: str, safe: bool) -> None:
    """expire_nodest_conn 0: moves keep connections; anything else: they may reset them."""
    path = tmp_path / "sys" / "net" / "ipv4" / "vs"
    path.mkdir(parents=True)
    (path / "expire_nodest_conn").write_text(value)

    assert moves_keep_connections(proc_root=tmp_path) is safe


def test_no_ipvs_means_not_safe(tmp_path: Path) -> None:
    """Without the sysctl (no IPVS loaded) moves are not taken as safe."""
    assert moves_keep_connections(proc_root=tmp_path) is False
