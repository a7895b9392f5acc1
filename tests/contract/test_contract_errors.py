"""Contract: refused operations carry the kernel's errno, and apply goes on past them."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field, replace

import pytest

from ipvsctl.backend.base import Backend
from ipvsctl.errors import BackendError
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    DeleteRealServer,
    DeleteVirtualService,
    EditRealServer,
    EditVirtualService,
    Operation,
    Persistence,
    Table,
    VirtualService,
)
from ipvsctl.plan import Ownership, plan
from tests.contract.values import TCP80, TCP80_V6, errnos, install, key, real, service, table_of

PRESENT = service(TCP80, real(11))
UNKNOWN_SCHEDULER = replace(PRESENT.settings(), scheduler="nosuch")


@dataclass(frozen=True)
class Refused:
    """An operation refused on a table holding ``PRESENT`` (unless ``setup`` says otherwise)."""

    operation: Operation
    errno: int
    setup: tuple[VirtualService, ...] = field(default=(PRESENT,))


REFUSALS = {
    "duplicate-service": Refused(AddVirtualService(PRESENT.settings()), errno.EEXIST),
    "duplicate-real-server": Refused(AddRealServer(TCP80, real(11)), errno.EEXIST),
    "edit-missing-service": Refused(
        EditVirtualService(PRESENT.settings(), previous=PRESENT.settings()), errno.ESRCH, setup=()
    ),
    "delete-missing-service": Refused(DeleteVirtualService(PRESENT.settings()), errno.ESRCH, setup=()),
    "real-server-of-missing-service": Refused(AddRealServer(TCP80, real(11)), errno.ESRCH, setup=()),
    "edit-missing-real-server": Refused(EditRealServer(TCP80, real(12), previous=real(12)), errno.ENOENT),
    "delete-missing-real-server": Refused(DeleteRealServer(TCP80, real(12)), errno.ENOENT),
    "add-unknown-scheduler": Refused(AddVirtualService(UNKNOWN_SCHEDULER), errno.ENOENT, setup=()),
    "edit-unknown-scheduler": Refused(EditVirtualService(UNKNOWN_SCHEDULER, previous=PRESENT.settings()), errno.ENOENT),
    "unknown-persistence-engine": Refused(
        AddVirtualService(replace(PRESENT.settings(), pe_name="nosuch")), errno.ENOENT, setup=()
    ),
    "mixed-family-masq": Refused(AddRealServer(TCP80_V6, real(11, family=4)), errno.EINVAL, setup=(service(TCP80_V6),)),
    "weight-over-int-max": Refused(AddRealServer(TCP80, real(12, weight=2**31)), errno.ERANGE),
    "negative-weight": Refused(AddRealServer(TCP80, real(12, weight=-1)), errno.ERANGE),
    "lower-threshold-above-upper": Refused(AddRealServer(TCP80, real(12, upper=5, lower=6)), errno.ERANGE),
    "multicast-real-server": Refused(AddRealServer(TCP80, replace(real(12), address="224.0.0.1")), errno.EINVAL),
    "ipv6-persistence-prefix-0": Refused(
        AddVirtualService(service(TCP80_V6, persistence=Persistence(timeout=60, netmask=0))), errno.EINVAL, setup=()
    ),
    "persistence-timeout-0": Refused(
        AddVirtualService(service(TCP80, persistence=Persistence(timeout=0, netmask=32))), errno.EINVAL, setup=()
    ),
    "port-out-of-range": Refused(AddVirtualService(service(key(port=65536))), errno.ERANGE, setup=()),
    "flag-of-another-scheduler": Refused(
        AddVirtualService(replace(PRESENT.settings(), sched_flags=frozenset({"sh-port"}))), errno.EINVAL, setup=()
    ),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
async def test_a_refused_operation_reports_the_kernels_errno(backend: Backend, case: Refused) -> None:
    """Each way to break a rule fails with the errno the kernel gives for it, and changes nothing."""
    await install(backend, *case.setup)

    report = await backend.apply([case.operation])

    assert (errnos(report), report.applied, await table_of(backend)) == ([case.errno], 0, Table.of(case.setup))


async def test_later_operations_on_a_failed_service_are_skipped(backend: Backend) -> None:
    """After a service's add fails, its real server adds are skipped, not attempted."""
    report = await backend.apply([AddVirtualService(UNKNOWN_SCHEDULER), AddRealServer(TCP80, real(11))])

    assert (errnos(report), report.applied, report.skipped) == ([errno.ENOENT], 0, 1)


async def test_apply_goes_on_with_other_services_after_a_failure(backend: Backend) -> None:
    """A failure on one service does not stop the operations on another."""
    other = service(TCP80_V6, real(11, family=6))
    operations: list[Operation] = [AddVirtualService(UNKNOWN_SCHEDULER), AddRealServer(TCP80, real(11))]
    operations += [AddVirtualService(other.settings()), AddRealServer(other.key, real(11, family=6))]

    report = await backend.apply(operations)

    assert (report.applied, report.skipped, await table_of(backend)) == (2, 1, Table.of([other]))


async def test_a_table_changed_behind_the_backends_back_reports_drift(backend: Backend, meddler: Backend) -> None:
    """A plan made against a stale table fails with a drift errno (EEXIST) once someone else added the service."""
    stale = await table_of(backend)
    await install(meddler, service(TCP80, real(12)))

    report = await backend.apply(plan(stale, Table.of([PRESENT]), ownership=Ownership()))

    assert (report.drifted, errnos(report), report.skipped) == (True, [errno.EEXIST], 1)


async def test_a_closed_backend_raises_backend_error(backend: Backend) -> None:
    """After close, reading is an error of the backend itself, not a per-operation failure."""
    await backend.close()

    with pytest.raises(BackendError):
        await backend.read()
