"""Command-line values converted without pydantic when the answer is certain; typer's own coercion otherwise.

typer (0.29) converts every value of a non-flag parameter through a pydantic ``TypeAdapter`` it builds when the
command runs: importing pydantic and building some twenty adapters cost ``diff`` and ``apply`` about 50 ms on
the host and 0.7 s in the kernel lab (one emulated vCPU), whatever the input. The values of ipvsctl's options
are few and plain — a string, a list of strings, a decimal number, a choice of an enum — and for those the
answer is known without a validator: the string itself, the member whose value is the text. Anything else (a
sign, spaces, a choice that does not match exactly, another type) goes to typer's coercion, which answers or
names the problem exactly as before (``tests/test_cli_coercion.py`` holds each shortcut to typer's answer).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, get_args, get_origin

from typer._click import Context  # typer vendors click privately; its parameters take this Context
from typer._click.core import Command
from typer._coercion import RuntimeParam, build_runtime_param
from typer.core import _TyperParameter

__all__ = ["UNSURE", "fast_converter", "use_fast_coercion"]

UNSURE: Any = object()
"""What a converter answers when only typer's coercion may decide."""

_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
Converter = Callable[[Any], Any]


def _to_bool(value: Any) -> Any:
    return value if type(value) is bool else UNSURE


def _to_str(value: Any) -> Any:
    return value if type(value) is str else UNSURE


def _to_int(value: Any) -> Any:
    if type(value) is int:
        return value
    if type(value) is str and len(value) < 19 and _DIGITS.fullmatch(value):  # short: no digit-count limit near
        return int(value)
    return UNSURE


def _to_float(value: Any) -> Any:
    if type(value) is float:
        return value
    if type(value) is str and len(value) < 16 and _DECIMAL.fullmatch(value):  # exactly representable enough: a
        return float(value)  # short decimal is read by float() and pydantic alike (the property checks it)
    return UNSURE


def _to_choice(enum: type[Enum]) -> Converter:
    members = {str(member.value): member for member in enum}

    def to_member(value: Any) -> Any:
        if isinstance(value, enum):
            return value
        if type(value) is str:
            return members.get(value, UNSURE)
        return UNSURE

    return to_member


def _to_list(item: Converter) -> Converter:
    def to_list(value: Any) -> Any:
        if type(value) not in (list, tuple):
            return UNSURE
        converted = [item(each) for each in value]
        return UNSURE if any(each is UNSURE for each in converted) else converted

    return to_list


def fast_converter(annotation: Any) -> Converter | None:
    """The shortcut for values of ``annotation`` (as typer resolved it), or None if it has none."""
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        converter = fast_converter(item)
        return None if converter is None else _to_list(converter)
    if annotation is bool:  # a flag's value is a bool already (typer's own shortcut), or None when not given
        return _to_bool
    if annotation is str:
        return _to_str
    if annotation is int:
        return _to_int
    if annotation is float:
        return _to_float
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _to_choice(annotation)
    return None


@dataclass(frozen=True)
class _FastRuntimeParam(RuntimeParam):
    """typer's runtime coercion of one parameter, with the shortcut tried first."""

    convert: Converter

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        converted = self.convert(value)
        if converted is not UNSURE:
            return converted
        return build_runtime_param(param.type_descriptor)._coerce_value(value, param=param, ctx=ctx)


def _plain(param: _TyperParameter) -> bool:
    """True when typer's coercion of ``param`` is the annotation's alone (no parser, bounds, paths, files)."""
    descriptor = param.type_descriptor
    info = descriptor.parameter_info
    return (
        info.parser is None
        and info.min is None
        and info.max is None
        and info.case_sensitive
        and not descriptor.is_path
        and not descriptor.is_file
        and param.nargs == 1
    )


def use_fast_coercion(command: Command, *, ctx: Context) -> None:
    """Give each plain parameter of ``command`` the shortcut (typer builds its own coercion only when needed)."""
    if ctx.token_normalize_func is not None:  # choices would be compared normalized
        return
    params: Iterable[Any] = command.get_params(ctx)  # with --help, which click adds (its value is None unless given)
    for param in params:
        if not isinstance(param, _TyperParameter) or param._runtime_param is not None or not _plain(param):
            continue
        descriptor = param.type_descriptor
        convert = fast_converter(descriptor.annotation)
        if convert is not None:
            param._runtime_param = _FastRuntimeParam(  # typer's lazy slot for its coercion
                parameter_info=descriptor.parameter_info, annotation=descriptor.annotation, convert=convert
            )
