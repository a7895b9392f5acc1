"""The agent's link: which names the kernel takes for it, and why only a dummy interface may be the agent's.

Pure (no I/O). Both backends check the same rules: ``interface_name_problem`` follows the kernel's
``dev_valid_name`` (``net/core/dev.c``), and ``foreign_interface_error`` is the refusal of a link of any kind
but ``dummy``. The agent makes its interface hold exactly its VIPs and ``cleanup`` deletes it: on a NIC, a
bridge, a veth or ``lo`` that would strip the node's own addresses and delete the device, so such a link is
never adopted.
"""

from __future__ import annotations

import errno
import unicodedata
from typing import Final

from ipvsctl.errors import BackendError

__all__ = [
    "DEFAULT_INTERFACE",
    "DUMMY_KIND",
    "IFNAMSIZ",
    "foreign_interface_error",
    "interface_name_problem",
    "valid_interface_name",
]

DEFAULT_INTERFACE: Final = "ipvs0"
DUMMY_KIND: Final = "dummy"  # IFLA_INFO_KIND of the dummy driver
IFNAMSIZ: Final = 16  # include/uapi/linux/if.h, with the terminating NUL

# The kernel's isspace() (lib/ctype.c): \t \n \v \f \r, space, and 0xA0 (Latin-1 no-break space), which
# is also the second byte of UTF-8 characters such as "à".
_SPACE_BYTES: Final = frozenset(b"\t\n\v\f\r \xa0")


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
