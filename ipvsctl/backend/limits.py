"""What the kernel takes, checked before anything reaches it: the refusals both backends share.

Pure (no I/O). The memory backend applies these checks exactly as the kernel backend does, so both refuse
the same operations and the same interfaces with the same errnos.

IPVS (``encoding_problem``): what cannot be encoded, or what the kernel would take silently and not read
back as written, is refused with the errno the kernel uses for such input (EINVAL; ERANGE for numbers out
of range). The scheduler flag names (``sched_flag_names``) are the kernel's bits 1..3 as ``ipvsadm`` prints
them; the IPVS codec maps them to bits.

The agent's interface: ``interface_name_problem`` follows the kernel's ``dev_valid_name``
(``net/core/dev.c``), and ``foreign_interface_error`` is the refusal of a link of any kind but ``dummy``.
The agent makes its interface hold exactly its VIPs and ``cleanup`` deletes it: on a NIC, a bridge, a veth
or ``lo`` that would strip the node's own addresses and delete the device, so such a link is never adopted.
"""

from __future__ import annotations

import errno
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ipvsctl.errors import BackendError
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    DeleteRealServer,
    EditRealServer,
    EditVirtualService,
    Operation,
    Protocol,
    RealServer,
    ServiceKey,
    VirtualService,
    max_prefix,
)

__all__ = [
    "DEFAULT_INTERFACE",
    "DUMMY_KIND",
    "IFNAMSIZ",
    "INT_MAX",
    "MAX_PERSISTENCE_TIMEOUT",
    "UINT_MAX",
    "Refusal",
    "encoding_problem",
    "foreign_interface_error",
    "interface_name_problem",
    "sched_flag_names",
    "valid_interface_name",
]

INT_MAX: Final = 2**31 - 1
UINT_MAX: Final = 2**32 - 1
# The kernel keeps timeout * HZ in an unsigned int: with HZ up to 1000 this is the longest safe timeout.
MAX_PERSISTENCE_TIMEOUT: Final = UINT_MAX // 1000
NAME_MAX: Final = 15  # IP_VS_SCHEDNAME_MAXLEN and IP_VS_PENAME_MAXLEN, less the NUL

# Names of the three scheduler flag bits, as ipvsadm prints them (sh and mh name the first two).
_GENERIC_FLAG_NAMES = ("flag-1", "flag-2", "flag-3")
_FLAG_NAMES: Mapping[str, tuple[str, ...]] = {
    "sh": ("sh-fallback", "sh-port", "flag-3"),
    "mh": ("mh-fallback", "mh-port", "flag-3"),
}

DEFAULT_INTERFACE: Final = "ipvs0"
DUMMY_KIND: Final = "dummy"  # IFLA_INFO_KIND of the dummy driver
IFNAMSIZ: Final = 16  # include/uapi/linux/if.h, with the terminating NUL

# The kernel's isspace() (lib/ctype.c): \t \n \v \f \r, space, and 0xA0 (Latin-1 no-break space), which
# is also the second byte of UTF-8 characters such as "à".
_SPACE_BYTES: Final = frozenset(b"\t\n\v\f\r \xa0")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an operation is refused before (or instead of) reaching the kernel."""

    errno: int
    message: str


def sched_flag_names(scheduler: str) -> tuple[str, ...]:
    """Names of the scheduler flag bits 1..3 for a scheduler."""
    return _FLAG_NAMES.get(scheduler, _GENERIC_FLAG_NAMES)


# --- IPVS operations ----------------------------------------------------------------------------------


def encoding_problem(operation: Operation) -> Refusal | None:
    """Why the operation cannot be sent as it is, or None; checked before anything reaches the kernel."""
    if type(operation) is AddRealServer:
        # The usual operation (three in four of an apply from empty): its checks inline when all pass, the walk
        # below to name what does not (40,000 checks were 1.6 s of a profiled lab apply at 10,000 x 3).
        key, real = operation.service, operation.real
        if (
            key.protocol is not Protocol.FWMARK
            and 0 <= key.port <= 65535
            and 0 <= real.port <= 65535
            and 0 <= real.weight <= INT_MAX
            and 0 <= real.upper_threshold <= UINT_MAX
            and 0 <= real.lower_threshold <= UINT_MAX
        ):
            return None
    return _problem(operation)


def _problem(operation: Operation) -> Refusal | None:
    problem = _key_problem(operation.key)
    if problem is not None:
        return problem
    match operation:
        case AddVirtualService(service=service) | EditVirtualService(service=service):
            return _settings_problem(service)
        case AddRealServer(real=real) | EditRealServer(real=real):
            return _real_problem(real, full=True)
        case DeleteRealServer(real=real):
            return _real_problem(real, full=False)
    return None


def _out_of_range(what: str, value: int, low: int, high: int) -> Refusal | None:
    if low <= value <= high:
        return None
    return Refusal(errno.ERANGE, f"{what} {value} out of range {low}..{high}")


def _bad_name(what: str, name: str, *, optional: bool) -> Refusal | None:
    if (optional and not name) or (name.isascii() and name.isprintable() and 0 < len(name) <= NAME_MAX):
        return None
    return Refusal(errno.EINVAL, f"bad {what} name {name!r}")


def _key_problem(key: ServiceKey) -> Refusal | None:
    if key.is_fwmark:
        return _out_of_range("firewall mark", key.port, 1, UINT_MAX)
    return _out_of_range("port", key.port, 0, 65535)


def _settings_problem(service: VirtualService) -> Refusal | None:
    problem = _bad_name("scheduler", service.scheduler, optional=False) or _bad_name(
        "persistence engine", service.pe_name, optional=True
    )
    if problem is not None:
        return problem
    if service.persistence is not None:
        persistence = service.persistence
        if persistence.timeout == 0:  # the kernel takes a persistent service with timeout 0 silently
            return Refusal(errno.EINVAL, "persistence timeout 0: a persistent service needs a timeout")
        problem = _out_of_range("persistence timeout", persistence.timeout, 1, MAX_PERSISTENCE_TIMEOUT)
        problem = problem or _out_of_range(
            "persistence netmask", persistence.netmask, 0, max_prefix(service.key.family)
        )
        if problem is not None:
            return problem
    names = sched_flag_names(service.scheduler)
    unknown = sorted(service.sched_flags - set(names))
    if unknown:
        return Refusal(errno.EINVAL, f"scheduler flags {', '.join(unknown)} not known to scheduler {service.scheduler}")
    return None


def _real_problem(real: RealServer, *, full: bool) -> Refusal | None:
    problem = _out_of_range("real server port", real.port, 0, 65535)
    if full:
        problem = (
            problem
            or _out_of_range("weight", real.weight, 0, INT_MAX)
            or _out_of_range("upper threshold", real.upper_threshold, 0, UINT_MAX)
            or _out_of_range("lower threshold", real.lower_threshold, 0, UINT_MAX)
        )
    return problem


# --- the agent's interface ----------------------------------------------------------------------------


def interface_name_problem(name: str) -> str | None:
    """Why the kernel would refuse ``name`` for a new link (``dev_valid_name``), or None when it takes it.

    Stricter in two ways: a ``%`` is refused, since the kernel reads it as a template (``ipvs%d`` becomes
    ``ipvs0``) and a link created under that name would never be found under it again; and so are control
    characters, which the kernel takes but which would spoof the lines a name is printed in.
    """
    try:
        raw = name.encode()
    except UnicodeEncodeError:
        return "is not valid text"
    if not raw:
        return "is empty"
    if len(raw) >= IFNAMSIZ:
        return f"is {len(raw)} bytes long: at most {IFNAMSIZ - 1}"
    if name in {".", ".."}:
        return "cannot be . or .."
    for byte in raw:
        if byte in _SPACE_BYTES:
            return "cannot hold whitespace"
        if byte in b"/:%":
            return f"cannot hold {chr(byte)!r}"
    if any(unicodedata.category(character) == "Cc" for character in name):
        return "cannot hold control characters"
    return None


def valid_interface_name(name: str) -> str:
    """``name`` when the kernel takes it for a link (``interface_name_problem``); BackendError (EINVAL) naming it."""
    problem = interface_name_problem(name)
    if problem is not None:
        raise BackendError(problem, target=f"interface {name!r}", errno=errno.EINVAL)
    return name


def foreign_interface_error(*, interface: str, kind: str) -> BackendError:
    """The refusal of an existing link named ``interface`` whose kind (IFLA_INFO_KIND, "" for none) is not dummy."""
    what = f"an interface of kind {kind!r}" if kind else "a device without a link kind (a physical NIC or loopback)"
    return BackendError(
        f"is {what}, not a dummy: ipvsctl keeps its VIPs only on a dummy interface, which it makes hold exactly "
        "its VIPs and deletes on cleanup",
        target=interface,
        errno=errno.EBUSY,  # the name is taken by a device that is not the agent's
    )
