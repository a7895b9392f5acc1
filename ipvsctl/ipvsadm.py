"""The text formats of ipvsadm 1.31: ``ipvsadm -Sn`` saves (parse and write) and ``ipvsadm -R`` input.

Pure: text in, model values out, and back. Facts of ipvsadm 1.31 (``ipvsadm.c``) this module follows:

- A save prints ``-A SVC -s SCHED [-p TIMEOUT [-M MASK]] [--pe NAME] [-o] [-b FLAGS]`` and
  ``-a SVC -r RS:PORT -m|-g|-i -w WEIGHT``, plus ``--tun-type ipip`` for ``-i``. It never prints the
  thresholds (``-x``/``-y``), so a save loses them; restore lines carry them.
- ``-M`` is printed only when it is not the full mask: dotted for IPv4, a prefix length for IPv6.
  On input an IPv4 ``-M 24`` is read by ``inet_aton`` as ``0.0.0.24``, so only dotted masks are taken.
- A fwmark is printed with ``%d`` (marks above 2**31-1 come out negative) but read as unsigned.
- Defaults on input: scheduler ``wlc``, forwarding ``-g``, weight 1, ``-p`` without a value 360 s.
- ``-E``/``-e`` replace every setting (flags are sent with an all-ones mask, unset fields are zero),
  so restore lines spell every setting out; ``-w`` accepts only 0..65535 there, and ``-g``/``-i``
  real servers of a non-fwmark service are silently given the service port.
- ``ipvsadm -R`` stops at the first failing line and does not skip ``#`` lines (``ipvsadm-restore`` does).
- ipvsadm sorts by differences of u32s cast to int, which is not numeric order; ``write_save`` uses the
  table's order, so a real save may list the same lines in another order (``parse_save`` takes any).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import assert_never

from ipvsctl.errors import SaveFormatError
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    DeleteRealServer,
    DeleteVirtualService,
    EditRealServer,
    EditVirtualService,
    Forwarding,
    Operation,
    Persistence,
    Protocol,
    RealServer,
    RealServerKey,
    ServiceKey,
    Table,
    VirtualService,
    canonical_ip,
    family_of,
    max_prefix,
)
from ipvsctl.numbers import parse_decimal

__all__ = ["parse_save", "render_restore", "write_save"]

INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1
MAX_PERSISTENCE_TIMEOUT = 86400 * 31  # ipvsadm's MAX_TIMEOUT
DEFAULT_PERSISTENCE_TIMEOUT = 6 * 60  # IPVS_SVC_PERSISTENT_TIMEOUT (the man page says 300; the code 360)
DEFAULT_SCHEDULER = "wlc"
RESTORE_MAX_WEIGHT = 65535  # ipvsadm -w limit, although the kernel holds weights up to INT_MAX


# The options a save line may carry, per command; options of one slot exclude each other (set_option).
_SERVICE_OPTIONS = frozenset({"-t", "-u", "--sctp-service", "-f", "-6"})
_ALLOWED: Mapping[str, frozenset[str]] = {
    "-A": _SERVICE_OPTIONS | {"-s", "-p", "-M", "--pe", "-o", "-b"},
    "-a": _SERVICE_OPTIONS | {"-r", "-m", "-g", "-i", "-w", "-x", "-y", "--tun-type"},
}
_OPTIONS = _ALLOWED["-A"] | _ALLOWED["-a"]
_TAKES_VALUE = _OPTIONS - {"-6", "-p", "-o", "-m", "-g", "-i"}
_OPTIONAL_VALUE = frozenset({"-p"})  # popt's ARGFLAG_OPTIONAL: the next token unless it starts with "-"
_SLOTS: Mapping[str, str] = {
    **dict.fromkeys(("-t", "-u", "--sctp-service", "-f"), "service"),
    **dict.fromkeys(("-m", "-g", "-i"), "forwarding"),
}
_PROTOCOL_FLAGS: Mapping[Protocol, str] = {Protocol.TCP: "-t", Protocol.UDP: "-u", Protocol.SCTP: "--sctp-service"}
_PROTOCOLS: Mapping[str, Protocol] = {flag: protocol for protocol, flag in _PROTOCOL_FLAGS.items()}
_FORWARDING_FLAGS: Mapping[Forwarding, str] = {Forwarding.MASQ: "-m", Forwarding.ROUTE: "-g", Forwarding.TUNNEL: "-i"}
_FORWARDINGS: Mapping[str, Forwarding] = {flag: method for method, flag in _FORWARDING_FLAGS.items()}

# Scheduler flags are three bits; sh and mh name the first two their own way (print_sched_flags).
_GENERIC_FLAG_NAMES = ("flag-1", "flag-2", "flag-3")
_FLAG_NAMES: Mapping[str, tuple[str, ...]] = {"sh": ("sh-fallback", "sh-port"), "mh": ("mh-fallback", "mh-port")}
_FLAG_BITS: Mapping[str, int] = {
    name: bit for names in (_GENERIC_FLAG_NAMES, *_FLAG_NAMES.values()) for bit, name in enumerate(names)
}
_NAME = re.compile(r"[a-z0-9_]{1,15}")  # IP_VS_SCHEDNAME_MAXLEN and IP_VS_PENAME_MAXLEN, less the NUL
_DIGITS = re.compile(r"[0-9]+")
# Every number of a save fits in a u32; more digits than a u64 has are out of range before int() sees them.
_MAX_DIGITS = 20


class _MalformedError(ValueError):
    """A line, or a model value on its way out, that ipvsadm would not accept as it is."""


@dataclass(frozen=True, slots=True)
class _Given:
    name: str
    value: str  # "" for options without a value


@dataclass(frozen=True, slots=True)
class _Line:
    command: str
    options: Mapping[str, _Given]  # by slot

    def value(self, slot: str) -> str | None:
        given = self.options.get(slot)
        return None if given is None else given.value


# --- parsing ---------------------------------------------------------------------------------------


def parse_save(text: str | bytes | bytearray, *, source: str = "") -> Table:
    """Parse ``ipvsadm -Sn`` output (text, or bytes that must be UTF-8) into a Table.

    SaveFormatError names the first bad line.
    """
    if not isinstance(text, str):
        text = SaveFormatError.decode(text, source=source)
    services: dict[ServiceKey, VirtualService] = {}
    reals: dict[ServiceKey, dict[RealServerKey, RealServer]] = {}
    fast = _FastLines(services=services, reals=reals)
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            if not fast.apply(stripped):
                _apply(_tokenize(stripped.split()), services=services, reals=reals)
        except _MalformedError as error:
            raise SaveFormatError(str(error), line_number=number, line=raw, source=source) from None
    return Table.of(replace(service, reals=tuple(reals[key].values())) for key, service in services.items())


# The two lines a save is made of, as ipvsadm prints them for a service without persistence or flags and for a
# masquerading or direct-routing real server: 90 % of the parse went to tokenizing them into options.
_FAST_SERVICE = re.compile(r"-A (-t|-u|--sctp-service) (\S+) -s ([a-z0-9_]{1,15})")
_FAST_REAL = re.compile(r"-a (-t|-u|--sctp-service) (\S+) -r (\S+) -([mg]) -w ([0-9]{1,10})")


@dataclass(slots=True)
class _FastLines:
    """Reads the usual save lines straight from a regular expression, with the general path's own checks.

    ``apply`` answers False for any other line, which then goes the general way (``_tokenize``); either way
    the same functions check the same values in the same order, so a line gives the same value or error.
    """

    services: dict[ServiceKey, VirtualService]
    reals: dict[ServiceKey, dict[RealServerKey, RealServer]]
    keys: dict[tuple[str, str], ServiceKey] = field(default_factory=dict)  # services declared by a fast line

    def apply(self, line: str) -> bool:
        """Apply ``line`` if it is one of the usual forms; False when it is not."""
        match = _FAST_REAL.fullmatch(line)
        if match is not None:
            key = self.keys.get((match[1], match[2]))
            if key is None:
                return False
            address, port = _endpoint(match[3], what="real server")
            weight = int(match[5])
            real = RealServer(address, port, weight=weight, forwarding=_FORWARDINGS["-" + match[4]])
            _check_real(real, key=key, restore=False)
            members = self.reals[key]
            if real.key in members:
                raise _MalformedError(f"duplicate real server {real} in {key}")
            members[real.key] = real
            return True
        match = _FAST_SERVICE.fullmatch(line)
        if match is None:
            return False
        address, port = _endpoint(match[2], what="virtual service")
        key = ServiceKey(_PROTOCOLS[match[1]], address, port)
        if key in self.services:
            raise _MalformedError(f"duplicate virtual service {key}")
        service = VirtualService(key, scheduler=match[3])
        _check_service(service)
        self.services[key] = service
        self.reals[key] = {}
        self.keys[match[1], match[2]] = key
        return True


def _apply(
    line: _Line,
    *,
    services: dict[ServiceKey, VirtualService],
    reals: dict[ServiceKey, dict[RealServerKey, RealServer]],
) -> None:
    key = _service_key(line)
    if line.command == "-A":
        if key in services:
            raise _MalformedError(f"duplicate virtual service {key}")
        services[key] = _virtual_service(line, key=key)
        reals[key] = {}
        return
    if key not in services:
        raise _MalformedError(f"real server for undeclared virtual service {key}")
    real = _real_server(line, key=key)
    if real.key in reals[key]:
        raise _MalformedError(f"duplicate real server {real} in {key}")
    reals[key][real.key] = real


def _tokenize(tokens: list[str]) -> _Line:
    command = tokens[0]
    if command not in _ALLOWED:
        raise _MalformedError(f"unsupported command {command!r}: a save holds only -A and -a lines")
    given: dict[str, _Given] = {}
    position = 1
    while position < len(tokens):
        option = tokens[position]
        position += 1
        if option not in _OPTIONS:
            if option.startswith("--") and option.endswith("-service"):
                raise _MalformedError(f"unknown protocol flag {option!r}")
            raise _MalformedError(
                f"unknown option {option!r}" if option.startswith("-") else f"unexpected argument {option!r}"
            )
        if option not in _ALLOWED[command]:
            raise _MalformedError(f"option {option} is not allowed with {command}")
        slot = _SLOTS.get(option, option)
        if slot in given:
            earlier = given[slot].name
            if earlier == option:
                raise _MalformedError(f"option {option} given twice")
            raise _MalformedError(f"options {earlier} and {option} exclude each other")
        value = ""
        following = tokens[position] if position < len(tokens) else None
        if option in _TAKES_VALUE:
            if following is None or following in _OPTIONS or following in _ALLOWED:
                raise _MalformedError(f"missing value for {option}")
            value, position = following, position + 1
        elif option in _OPTIONAL_VALUE and following is not None and not following.startswith("-"):
            value, position = following, position + 1
        given[slot] = _Given(option, value)
    return _Line(command, given)


def _service_key(line: _Line) -> ServiceKey:
    given = line.options.get("service")
    if given is None:
        raise _MalformedError("missing virtual service (-t, -u, --sctp-service or -f)")
    if given.name == "-f":
        digits = given.value.removeprefix("-")
        mark = _integer(digits, what="firewall mark", shown=given.value)
        if digits != given.value:
            mark = -mark
        if -(2**31) <= mark < 0:
            mark += 2**32  # ipvsadm prints the unsigned mark with %d
        _bounded(mark, low=1, high=UINT_MAX, what="firewall mark")
        return ServiceKey.fwmark(mark, family=6 if "-6" in line.options else 4)
    if "-6" in line.options:
        raise _MalformedError("-6 is only valid after -f")
    address, port = _endpoint(given.value, what="virtual service")
    return ServiceKey(_PROTOCOLS[given.name], address, port)


def _virtual_service(line: _Line, *, key: ServiceKey) -> VirtualService:
    scheduler = line.value("-s") or DEFAULT_SCHEDULER
    timeout = line.value("-p")
    netmask = line.value("-M")
    persistence = None
    if timeout is not None:
        persistence = Persistence(
            timeout=_integer(timeout, what="persistence timeout") if timeout else DEFAULT_PERSISTENCE_TIMEOUT,
            netmask=max_prefix(key.family) if netmask is None else _netmask(netmask, family=key.family),
        )
    elif netmask is not None:
        raise _MalformedError("netmask (-M) given without persistence (-p)")
    flags = line.value("-b")
    service = VirtualService(
        key,
        scheduler=scheduler,
        persistence=persistence,
        sched_flags=frozenset(_flag_names(scheduler, flags.split(",")) if flags is not None else ()),
        one_packet="-o" in line.options,
        pe_name=line.value("--pe") or "",
    )
    _check_service(service)
    return service


def _real_server(line: _Line, *, key: ServiceKey) -> RealServer:
    target = line.value("-r")
    if target is None:
        raise _MalformedError("missing real server (-r)")
    address, port = _endpoint(target, what="real server")
    method = line.options.get("forwarding")
    forwarding = Forwarding.ROUTE if method is None else _FORWARDINGS[method.name]
    tunnel_type = line.value("--tun-type")
    if tunnel_type is not None and forwarding is not Forwarding.TUNNEL:
        raise _MalformedError("--tun-type needs tunneling (-i)")
    if tunnel_type not in (None, "ipip"):
        raise _MalformedError(f"unsupported tunnel type {tunnel_type!r}: only ipip is modelled")
    real = RealServer(
        address,
        port,
        weight=_count(line, slot="-w", default=1, what="weight"),
        forwarding=forwarding,
        upper_threshold=_count(line, slot="-x", default=0, what="upper threshold"),
        lower_threshold=_count(line, slot="-y", default=0, what="lower threshold"),
    )
    _check_real(real, key=key, restore=False)
    return real


def _endpoint(text: str, *, what: str) -> tuple[str, int]:
    """``IPv4:PORT`` or ``[IPv6]:PORT`` as a canonical address and a port."""
    if text.startswith("["):
        host, bracket, port = text[1:].partition("]:")
        if not bracket:
            raise _MalformedError(f"bad {what} {text!r}: expected [IPv6]:PORT")
    else:
        host, colon, port = text.rpartition(":")
        if not colon:
            raise _MalformedError(f"missing port in {what} {text!r}")
    try:
        address = canonical_ip(host)
    except ValueError:
        raise _MalformedError(f"bad {what} address {host!r}") from None
    bracketed = text.startswith("[")
    if "%" in address or family_of(address) != (6 if bracketed else 4):
        hint = "" if bracketed else " (IPv6 goes in brackets)"
        raise _MalformedError(f"bad {what} address {host!r}{hint}")
    number = _integer(port, what=f"{what} port")
    _bounded(number, low=0, high=65535, what=f"{what} port")
    return address, number


def _netmask(text: str, *, family: int) -> int:
    """The prefix length of a ``-M`` value: a prefix length for IPv6, a dotted mask for IPv4."""
    if family == 6:
        return _integer(text, what="persistence netmask")
    try:
        mask = int(ipaddress.IPv4Address(text))
    except ValueError:
        raise _MalformedError(f"bad persistence netmask {text!r}: IPv4 needs a dotted mask") from None
    prefix = mask.bit_count()
    if mask != (UINT_MAX << (32 - prefix)) & UINT_MAX:
        raise _MalformedError(f"non-contiguous persistence netmask {text}")
    return prefix


def _count(line: _Line, *, slot: str, default: int, what: str) -> int:
    text = line.value(slot)
    return default if text is None else _integer(text, what=what)


def _integer(text: str, *, what: str, shown: str | None = None) -> int:
    """A decimal field; ``shown`` is the text to quote when it is not one (default: ``text``)."""
    value = parse_decimal(text, max_digits=_MAX_DIGITS)
    if value is not None:
        return value
    if _DIGITS.fullmatch(text):  # only ASCII digits, but more than any field can hold (and int() can read)
        raise _MalformedError(f"{what} of {len(text)} digits out of range")
    raise _MalformedError(f"bad {what} {text if shown is None else shown!r}: not a number")


# --- checks shared by parsing and writing ------------------------------------------------------------


def _bounded(value: int, *, low: int, high: int, what: str) -> None:
    if not low <= value <= high:
        raise _MalformedError(f"{what} {value} out of range {low}..{high}")


def _check_name(name: str, *, what: str) -> None:
    if not _NAME.fullmatch(name):
        raise _MalformedError(f"bad {what} name {name!r}")


def _check_service(service: VirtualService) -> None:
    """Raise unless ipvsadm can both accept and print these settings."""
    key = service.key
    if key.is_fwmark:
        _bounded(key.port, low=1, high=UINT_MAX, what="firewall mark")
    _check_name(service.scheduler, what="scheduler")
    if service.persistence is not None:
        timeout, netmask = service.persistence.timeout, service.persistence.netmask
        _bounded(timeout, low=1, high=MAX_PERSISTENCE_TIMEOUT, what="persistence timeout")
        _bounded(netmask, low=1 if key.family == 6 else 0, high=max_prefix(key.family), what="persistence netmask")
    elif not key.is_fwmark and key.port == 0:
        raise _MalformedError("port 0 needs persistence (-p)")
    if service.one_packet and key.protocol not in (Protocol.UDP, Protocol.FWMARK):
        raise _MalformedError("one-packet scheduling (-o) is only for UDP and fwmark services")
    if service.pe_name:
        _check_name(service.pe_name, what="persistence engine")
    _flag_names(service.scheduler, service.sched_flags)


def _check_real(real: RealServer, *, key: ServiceKey, restore: bool) -> None:
    """Raise unless ipvsadm accepts the real server (in restore input, tighter limits apply)."""
    _bounded(real.weight, low=0, high=RESTORE_MAX_WEIGHT if restore else INT_MAX, what="weight")
    _bounded(real.upper_threshold, low=0, high=INT_MAX, what="upper threshold")
    _bounded(real.lower_threshold, low=0, high=real.upper_threshold, what="lower threshold")  # else ERANGE
    if family_of(real.address) != key.family and real.forwarding is not Forwarding.TUNNEL:
        raise _MalformedError(f"real server {real} is not of the family of {key} (only -i may differ)")
    if restore and not key.is_fwmark and real.forwarding is not Forwarding.MASQ and real.port != key.port:
        raise _MalformedError(f"ipvsadm would give real server {real} of {key} the service port")


def _flag_names(scheduler: str, flags: Iterable[str]) -> tuple[str, ...]:
    """Scheduler flags as ipvsadm prints them for a scheduler: its names for the bits, in bit order."""
    names = _FLAG_NAMES.get(scheduler, _GENERIC_FLAG_NAMES)
    bits: set[int] = set()
    for flag in flags:
        if flag not in _FLAG_BITS:
            raise _MalformedError(f"unknown scheduler flag {flag!r}")
        owner = flag.partition("-")[0]
        if owner in _FLAG_NAMES and owner != scheduler:
            raise _MalformedError(f"scheduler flag {flag} needs scheduler {owner}")
        if _FLAG_BITS[flag] >= len(names):
            raise _MalformedError(f"scheduler flag {flag} cannot be saved with scheduler {scheduler}")
        bits.add(_FLAG_BITS[flag])
    return tuple(names[bit] for bit in sorted(bits))


# --- writing -------------------------------------------------------------------------------------


def write_save(table: Table) -> str:
    """The text ``ipvsadm -Sn`` prints for a table (services in table order); thresholds are not saved."""
    lines: list[str] = []
    for service in table:
        _check_service(service)
        spec = _service_spec(service.key, save=True)
        lines.append(f"-A {spec} {_service_settings(service, save=True)}")
        for real in service.reals:
            _check_real(real, key=service.key, restore=False)
            lines.append(f"-a {spec} {_real_settings(real, save=True)}")
    return "".join(f"{line}\n" for line in lines)


def render_restore(operations: Iterable[Operation]) -> str:
    """One ``ipvsadm -R`` line per operation, every setting explicit; ValueError if ipvsadm cannot say it."""
    return "".join(f"{_restore_line(operation)}\n" for operation in operations)


def _restore_line(operation: Operation) -> str:
    match operation:
        case AddVirtualService(service=service) | EditVirtualService(service=service):
            _check_service(service)
            command = "-A" if isinstance(operation, AddVirtualService) else "-E"
            return f"{command} {_service_spec(service.key, save=False)} {_service_settings(service, save=False)}"
        case DeleteVirtualService(service=service):
            return f"-D {_service_spec(service.key, save=False)}"
        case AddRealServer(service=key, real=real) | EditRealServer(service=key, real=real):
            _check_real(real, key=key, restore=True)
            command = "-a" if isinstance(operation, AddRealServer) else "-e"
            return f"{command} {_service_spec(key, save=False)} {_real_settings(real, save=False)}"
        case DeleteRealServer(service=key, real=real):
            return f"-d {_service_spec(key, save=False)} -r {real.key}"
        case _:
            assert_never(operation)


def _service_spec(key: ServiceKey, *, save: bool) -> str:
    if key.is_fwmark:
        mark = key.port - 2**32 if save and key.port > INT_MAX else key.port
        return f"-f {mark} -6" if key.family == 6 else f"-f {mark}"
    return f"{_PROTOCOL_FLAGS[key.protocol]} {key.endpoint()}"


def _service_settings(service: VirtualService, *, save: bool) -> str:
    parts = ["-s", service.scheduler]
    persistence = service.persistence
    if persistence is not None:
        parts += ["-p", str(persistence.timeout)]
        family = service.key.family
        if not save or persistence.netmask != max_prefix(family):
            parts += ["-M", _netmask_text(persistence.netmask, family=family)]
    if service.pe_name:
        parts += ["--pe", service.pe_name]
    if service.one_packet:
        parts.append("-o")
    flags = _flag_names(service.scheduler, service.sched_flags)
    if flags:
        parts += ["-b", ",".join(flags)]
    return " ".join(parts)


def _real_settings(real: RealServer, *, save: bool) -> str:
    parts = ["-r", str(real.key), _FORWARDING_FLAGS[real.forwarding], "-w", str(real.weight)]
    if save and real.forwarding is Forwarding.TUNNEL:
        parts += ["--tun-type", "ipip"]  # 1.31 names the tunnel type; the model holds ipip only
    if not save:  # a save has no thresholds; restore lines carry them, as -e resets what it is not given
        for flag, value in (("-x", real.upper_threshold), ("-y", real.lower_threshold)):
            if value:
                parts += [flag, str(value)]
    return " ".join(parts)


def _netmask_text(prefix: int, *, family: int) -> str:
    if family == 6:
        return str(prefix)
    return str(ipaddress.IPv4Address((UINT_MAX << (32 - prefix)) & UINT_MAX))
