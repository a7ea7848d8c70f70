"""Bounds on what one template may compute, so a hostile or mistaken pipeline cannot exhaust memory or time.

``{{ 'a' * 10**9 }}`` would allocate a gigabyte, ``{{ 10 ** 100000000 }}`` would compute for
minutes, and a macro that calls itself would blow the stack. The sandbox here checks every
operator, call, filter, ``~`` join, loop iteration and printed value *before* it builds a large
result, and the whole render against a work and time budget. A breach raises TemplateLimitError,
which the renderer turns into a located pipeline error.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.sandbox import ImmutableSandboxedEnvironment

from wanflow._exceptions import TemplateLimitError

MAX_TEXT = 1_000_000  # characters in one string, and in one rendered template
MAX_ITEMS = 100_000  # items in one list, tuple or mapping
MAX_INT_DIGITS = 4_000  # decimal digits of one integer
MAX_INT_BITS = int(MAX_INT_DIGITS * 3.3219)  # every integer of this many bits has at most MAX_INT_DIGITS digits
MAX_DEPTH = 20  # calls inside calls (a macro calling itself)
MAX_NESTING = 50  # expressions and blocks nested in the template source
MAX_STEPS = 1_000_000  # loop iterations, calls, filters and operators in one render
MAX_PRODUCED = 16_000_000  # characters and items all the operations of one render create together
MAX_SECONDS = 2.0  # wall-clock time of one render

LOOP_FILTER = "wanflow_loop"  # wraps every {% for %} iterable so each iteration is counted


@dataclass
class _Budget:
    deadline: float
    steps: int = 0
    produced: int = 0
    depth: int = 0


_local = threading.local()


@contextmanager
def render_budget() -> Iterator[None]:
    """Count the work of one render (a render inside a render shares the outer budget)."""
    if getattr(_local, "budget", None) is not None:
        yield
        return
    _local.budget = _Budget(time.monotonic() + MAX_SECONDS)
    try:
        yield
    finally:
        _local.budget = None


def _budget() -> _Budget | None:
    return getattr(_local, "budget", None)  # None during constant folding at compile time: sizes are still checked


def _tick() -> None:
    """Count one operation, loop iteration or call; enforce the step and time bounds."""
    budget = _budget()
    if budget is None:
        return
    budget.steps += 1
    if budget.steps > MAX_STEPS:
        raise TemplateLimitError(f"the template does more than {MAX_STEPS:,} loop iterations, calls and operations")
    if time.monotonic() > budget.deadline:
        raise TemplateLimitError(f"the template took more than {MAX_SECONDS:g} s to render")


def _produced(amount: int) -> None:
    """Count characters and items a render created: the sum bounds its memory, whatever the loops."""
    budget = _budget()
    if budget is None or not amount:
        return
    budget.produced += amount
    if budget.produced > MAX_PRODUCED:
        raise TemplateLimitError(f"the template builds more than {MAX_PRODUCED:,} characters and items in all")


# --- sizes -----------------------------------------------------------------------------------

_SIZED = (str, bytes, list, tuple, dict, set, frozenset)


def _length(value: Any) -> int:
    return len(value) if isinstance(value, _SIZED) else 0


def weight(value: Any, limit: int = MAX_TEXT) -> int:
    """Roughly how many characters ``value`` becomes as text; stops counting once past ``limit``."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(item)
            stack.extend(item)
        else:
            total += 16
    return total


def check_text(length: int, what: str = "the result", limit: int = MAX_TEXT) -> None:
    """Refuse text longer than ``limit`` (MAX_TEXT) characters."""
    if length > limit:
        raise TemplateLimitError(f"{what} would be {length:,} characters long (at most {limit:,})")


def check_items(count: int, what: str = "the result") -> None:
    """Refuse a list of more than MAX_ITEMS items."""
    if count > MAX_ITEMS:
        raise TemplateLimitError(f"{what} would have {count:,} items (at most {MAX_ITEMS:,})")


def _check_int_bits(bits: int, what: str = "the result") -> None:
    if bits > MAX_INT_BITS:
        raise TemplateLimitError(f"{what} would be an integer of more than {MAX_INT_DIGITS:,} digits")


def check_value(value: Any, what: str = "the result") -> None:
    """Refuse a finished value that is too large (and count it against the render's budget)."""
    if isinstance(value, (str, bytes)):
        check_text(len(value), what)
    elif isinstance(value, (list, tuple, dict, set, frozenset)):
        check_items(len(value), what)
    elif isinstance(value, int):
        _check_int_bits(value.bit_length(), what)
    _produced(_length(value))


def check_printable(value: Any, what: str = "the value", limit: int = MAX_TEXT) -> None:
    """Refuse a value whose text form would be longer than ``limit``, before it is turned into text."""
    if not isinstance(value, str):
        check_text(weight(value, limit), f"{what} as text", limit)


# --- operators -------------------------------------------------------------------------------

_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_SPEC_NUMBER = re.compile(r"\{[^{}]*?:[^{}]*?(\d+)")
_NESTED_FORMAT = re.compile(r"\{[^{}]*\{")


def _ints(values: Iterable[Any]) -> list[int]:
    return [abs(v) for v in values if isinstance(v, int) and not isinstance(v, bool)]


def _printf_size(template: str, args: Any) -> int:
    """An upper bound of the length of ``template % args``."""
    values = args if isinstance(args, tuple) else (args,)
    widths = 0
    for match in _PRINTF_FIELD.finditer(template):
        for number in match.groups():
            if number == "*":
                widths += sum(_ints(values))
            elif number:
                widths += int(number[:12])  # twelve digits are past any limit already
    return len(template) + widths + weight(args)


def _format_size(template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """An upper bound of the length of ``template.format(*args, **kwargs)``."""
    widths = sum(int(number[:12]) for number in _FORMAT_SPEC_NUMBER.findall(template))
    if _NESTED_FORMAT.search(template):  # '{:{}}' takes its width from the arguments
        widths += sum(_ints(args)) + sum(_ints(kwargs.values()))
    return len(template) + widths + weight(args) + weight(dict(kwargs))


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for sequence, times in ((left, right), (right, left)):
            if isinstance(sequence, (str, bytes, list, tuple)) and isinstance(times, int):
                size = len(sequence) * max(times, 0)
                (check_text if isinstance(sequence, (str, bytes)) else check_items)(size, "the repetition")
        if isinstance(left, int) and isinstance(right, int) and left and right:
            _check_int_bits(left.bit_length() + right.bit_length() - 1, "the product")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _check_int_bits((abs(left).bit_length() - 1) * right, "the power")
    elif operator == "+":
        if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
            check_text(len(left) + len(right), "the sum")
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            check_items(len(left) + len(right), "the sum")
    elif operator == "%" and isinstance(left, str):
        check_text(_printf_size(left, right), "the formatted text")


# --- calls and filters -----------------------------------------------------------------------

_AMPLIFYING_OWNERS = (str, bytes, int)  # list and dict methods cannot grow anything in the immutable sandbox


def _check_method(target: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Pre-checks for the methods of built-in values that can build large results."""
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", "")
    if not isinstance(owner, _AMPLIFYING_OWNERS):
        return
    for number in _ints([*args, *kwargs.values()]):
        if number > MAX_TEXT:  # a width, a size in bytes, a count: no legitimate one is this large
            raise TemplateLimitError(f"{name}() was given {number:,} (at most {MAX_TEXT:,})")
    if isinstance(owner, str):
        if name == "replace" and len(args) >= 2:
            _check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else -1)
        elif name == "join" and args:
            check_text(weight(args[0]) + len(owner) * _length(args[0]), "the joined text")
        elif name == "expandtabs":
            size = int(args[0]) if args and isinstance(args[0], int) else int(kwargs.get("tabsize", 8))
            check_text(len(owner) + owner.count("\t") * size, "the expanded text")
        elif name in ("format", "format_map"):
            mapping = args[0] if name == "format_map" and args and isinstance(args[0], Mapping) else kwargs
            check_text(_format_size(owner, args if name == "format" else (), mapping), "the formatted text")


def _check_replace(text: Any, old: Any, new: Any, count: Any) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    found = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    check_text(len(text) + found * (len(new) - len(old)), "the replaced text")


def _arg(values: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    if len(values) > index:
        return values[index]
    return kwargs.get(name, default)


def _filter_center(values: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    width = _arg(values, kwargs, 1, "width", 80)
    if isinstance(width, int):
        check_text(width, "the centred text")


def _filter_indent(values: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    text, width = str(values[0]) if values else "", _arg(values, kwargs, 1, "width", 4)
    size = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    check_text(len(text) + size * (text.count("\n") + 1), "the indented text")


def _filter_join(values: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    items, separator = values[0] if values else (), _arg(values, kwargs, 1, "d", "")
    check_text(weight(items) + _length(separator) * _length(items), "the joined text")


def _filter_replace(values: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if len(values) >= 3:
        _check_replace(str(values[0]), values[1], values[2], _arg(values, kwargs, 3, "count", -1))


def _filter_format(values: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if values and isinstance(values[0], str):
        check_text(_printf_size(values[0], tuple(values[1:])) + weight(dict(kwargs)), "the formatted text")


def _filter_wordwrap(values: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    text = str(values[0]) if values else ""
    wrap = _arg(values, kwargs, 4, "wrapstring", "\n")
    check_text(len(text) * (1 + _length(wrap or "\n")), "the wrapped text")


def _filter_count(index: int, name: str) -> Callable[[tuple[Any, ...], Mapping[str, Any]], None]:
    def check(values: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        count = _arg(values, kwargs, index, name, 0)
        if isinstance(count, int):
            check_items(count, f"'{name}'")
    return check


def _filter_sum(values: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    start = _arg(values, kwargs, 2, "start", 0)
    if isinstance(start, (list, tuple)) and values:
        check_items(len(start) + sum(_length(item) for item in values[0]), "the sum")


def _filter_as_text(values: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if values:
        check_printable(values[0])


# Filters that can build a result much larger than their input, and how to bound it first.
_FILTER_CHECKS: dict[str, Callable[[tuple[Any, ...], Mapping[str, Any]], None]] = {
    "center": _filter_center,
    "indent": _filter_indent,
    "join": _filter_join,
    "replace": _filter_replace,
    "format": _filter_format,
    "wordwrap": _filter_wordwrap,
    "batch": _filter_count(1, "linecount"),
    "slice": _filter_count(1, "slices"),
    "sum": _filter_sum,
    **{name: _filter_as_text for name in ("string", "tojson", "pprint", "urlencode", "xmlattr", "e", "escape",
                                          "forceescape", "urlize", "title", "capitalize", "upper", "lower")},
}


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    check = _FILTER_CHECKS.get(name)
    passes_context = hasattr(function, "jinja_pass_arg")  # the first argument is Jinja's, not the user's

    @functools.wraps(function)  # keeps jinja_pass_arg, so Jinja passes the same arguments
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        if check is not None:
            check(args[1:] if passes_context else args, kwargs)
        result = function(*args, **kwargs)
        check_value(result, f"the '{name}' filter's result")
        return result

    return guarded


def _loop(iterable: Any) -> Iterator[Any]:
    """Every ``{% for %}`` iterates through this, so each iteration counts against the budget."""
    for item in iterable:
        _tick()
        yield item


# --- the environment -------------------------------------------------------------------------

def check_nesting(tree: nodes.Node) -> None:
    """Refuse templates nested deeper than MAX_NESTING (walked without recursion)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise TemplateLimitError(f"the template nests expressions or blocks more than {MAX_NESTING} levels deep")
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``~`` joins routed through a size check."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_text((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with every operator, call, filter, join, loop and output bounded."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})  # also stops compile-time folding of them
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _guard_filter(name, function) for name, function in self.filters.items()}
        self.filters[LOOP_FILTER] = _loop

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Check the size of an operator's result before computing it."""
        _tick()
        _check_binop(operator, left, right)
        result = self.binop_table[operator](left, right)
        check_value(result, f"the result of '{operator}'")
        return result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Bound the nesting of calls and the results of built-in methods."""
        _tick()
        _check_method(getattr(__obj, "__wrapped__", __obj), args, kwargs)  # str.format comes wrapped by the sandbox
        budget = _budget()
        if budget is not None:
            if budget.depth >= MAX_DEPTH:
                raise TemplateLimitError(f"calls nest more than {MAX_DEPTH} levels deep (a macro that calls itself?)")
            budget.depth += 1
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            if budget is not None:
                budget.depth -= 1
        check_value(result, "the call's result")
        return result

    @staticmethod
    def concat(pieces: Iterable[str]) -> str:
        """Join a template's (or a macro's) output, refusing it past MAX_TEXT characters."""
        parts: list[str] = []
        total = 0
        for piece in pieces:
            total += len(piece)
            if total > MAX_TEXT:
                raise TemplateLimitError(f"the rendered text would be more than {MAX_TEXT:,} characters long")
            parts.append(piece)
        _produced(total)
        return "".join(parts)

    def join_text(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b``: checked before the text is built."""
        _tick()
        check_text(sum(len(part) if isinstance(part, str) else weight(part) for part in parts), "the '~' join")
        result = "".join(map(str, parts))
        _produced(len(result))
        return result

    def _generate(self, source: nodes.Template, name: str | None, filename: str | None, defer_init: bool = False) -> str:
        check_nesting(source)
        for loop in source.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
        return super()._generate(source, name, filename, defer_init=defer_init)
