"""Jinja2 templates in a sandbox: rendering, native values and static step references.

Every string in a pipeline is a template. A string that is exactly one ``{{ expression }}``
evaluates to the expression's own value (an Artifact, a list, a number), so
``images: "{{ steps.hero.images }}"`` passes a list and ``duration: "{{ vars.seconds }}"`` an int.
Any other string renders to text. Undefined names are errors, and the immutable sandbox blocks
attribute escapes such as ``''.__class__``. Sizes, nesting, work and time of every render are
bounded (``template_limits``).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wanflow._exceptions import TemplateProblem, TemplateReferenceError
from wanflow.artifacts import Artifact

# Jinja (and template_limits, built on it) is imported where a string really is a template: a
# pipeline without any, rerun from the cache, never loads it.
if TYPE_CHECKING:
    from jinja2 import nodes

    from wanflow.pipelines.template_limits import BoundedSandbox

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{-?(?P<expr>.*?)-?\}\}\s*$", re.DOTALL)


def _finalize(value: Any) -> Any:
    """Turn values printed into text: text artifacts become their content, media is refused."""
    from wanflow.pipelines.template_limits import check_printable

    if isinstance(value, Artifact):
        if value.kind == "text":
            return value.read_text()
        raise TemplateReferenceError(
            f"{value.describe()} cannot be written into text; pass it as an image/image/audio input instead"
        )
    if isinstance(value, (list, tuple)) and any(isinstance(item, Artifact) for item in value):
        raise TemplateReferenceError("a list of artifacts cannot be written into text")
    check_printable(value, "a printed value")
    return value


@functools.cache
def environment() -> BoundedSandbox:
    """The shared sandboxed environment (no filesystem loader, no globals beyond Jinja's safe ones)."""
    from jinja2 import StrictUndefined

    from wanflow.pipelines.template_limits import BoundedSandbox

    env = BoundedSandbox(
        undefined=StrictUndefined,
        autoescape=False,
        finalize=_finalize,
        keep_trailing_newline=True,
    )
    # Nothing from the process environment is exposed; drop the few helpers that can build objects.
    for name in ("range", "lipsum", "cycler", "joiner", "namespace"):
        env.globals.pop(name, None)
    return env


def is_template(text: str) -> bool:
    """Whether ``text`` contains any Jinja syntax."""
    return "{{" in text or "{%" in text or "{#" in text


@functools.lru_cache(maxsize=4096)
def parse(source: str) -> nodes.Template:
    """Parse ``source`` (cached); syntax errors become TemplateProblem."""
    from jinja2 import TemplateSyntaxError

    from wanflow._exceptions import TemplateLimitError
    from wanflow.pipelines.template_limits import check_nesting

    try:
        tree = environment().parse(source)
        check_nesting(tree)
        return tree
    except TemplateSyntaxError as error:
        raise TemplateProblem(f"template syntax error: {error.message}", error.lineno) from None
    except TemplateLimitError as error:
        raise TemplateProblem(f"template limit: {error}") from None
    except RecursionError:
        raise TemplateProblem(_TOO_DEEP) from None


_TOO_DEEP = "template limit: the template nests too deeply"


@dataclass(frozen=True)
class References:
    """What a template reads from ``steps``: the step ids, and (step, field) pairs where a field is named."""

    steps: tuple[str, ...]
    fields: tuple[tuple[str, str], ...]


def referenced_steps(source: str) -> References:
    """Find the steps (and their output fields) a template reads, without rendering it.

    Raises TemplateProblem for a dynamic reference (``steps[vars.x]``, ``for s in steps``):
    dependencies must be knowable before anything runs.
    """
    if not is_template(source):
        return References((), ())
    from jinja2 import nodes

    tree = parse(source)
    steps: list[str] = []
    fields: list[tuple[str, str]] = []
    direct_uses = 0
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, (nodes.Getattr, nodes.Getitem))  # find_all's annotation widens the pair to Expr
        inner = node.node
        if isinstance(inner, nodes.Name) and inner.name == "steps":
            direct_uses += 1
            step = _literal_key(node)
            if step is None:
                raise TemplateProblem("steps must be referenced by name, e.g. steps.hero.images[0]", node.lineno)
            if step not in steps:
                steps.append(step)
        elif isinstance(inner, (nodes.Getattr, nodes.Getitem)) and _is_steps_name(inner.node):
            step, field = _literal_key(inner), _literal_key(node)
            if step is not None and field is not None and (step, field) not in fields:
                fields.append((step, field))
    names = [node for node in tree.find_all(nodes.Name) if node.name == "steps"]
    if len(names) > direct_uses:
        raise TemplateProblem("steps must be referenced by name, e.g. steps.hero.images[0]", names[0].lineno)
    return References(tuple(steps), tuple(fields))


def _is_steps_name(node: nodes.Node) -> bool:
    from jinja2 import nodes

    return isinstance(node, nodes.Name) and node.name == "steps"


def _literal_key(node: nodes.Getattr | nodes.Getitem) -> str | None:
    from jinja2 import nodes

    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def render(source: str, context: Mapping[str, Any]) -> Any:
    """Render ``source`` with ``context``: a native value for a lone expression, else text."""
    if not is_template(source):
        return source
    (TemplateSyntaxError, SecurityError, TemplateError, UndefinedError, Undefined, MAX_PRODUCED, TemplateLimitError,
     check_printable, check_value, render_budget) = _render_names()
    try:
        with render_budget():
            expression = _compiled_expression(source)
            if expression is not None:
                value = expression(**context)
                if isinstance(value, Undefined):
                    value._fail_with_undefined_error()
                check_value(value, "the value")
                # A native value (a for_each list, say) may be long, but not so long that using it as
                # text later (a prompt, a message quoting it) could exhaust memory.
                check_printable(value, "the value", MAX_PRODUCED)
                return value
            return _compiled_template(source).render(**context)
    except TemplateLimitError as error:
        raise TemplateProblem(f"template limit: {error}", _template_line(error, source)) from None
    except RecursionError:
        raise TemplateProblem(_TOO_DEEP) from None
    except MemoryError:
        raise TemplateProblem("template limit: the template needs more memory than there is") from None
    except TemplateSyntaxError as error:
        raise TemplateProblem(f"template syntax error: {error.message}", error.lineno) from None
    except TemplateReferenceError as error:
        raise TemplateProblem(str(error)) from None
    except SecurityError as error:
        raise TemplateProblem(f"blocked by the template sandbox: {error}") from None
    except UndefinedError as error:
        raise TemplateProblem(f"undefined: {error.message}") from None
    except TemplateError as error:
        raise TemplateProblem(f"template error: {error.message or error}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as error:
        raise TemplateProblem(f"template error: {error}") from None


@functools.cache
def _render_names() -> tuple[Any, ...]:
    """What ``render`` needs from Jinja and template_limits, imported once (a batch renders thousands of times)."""
    from jinja2 import TemplateSyntaxError
    from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
    from jinja2.runtime import Undefined

    from wanflow._exceptions import TemplateLimitError
    from wanflow.pipelines.template_limits import MAX_PRODUCED, check_printable, check_value, render_budget

    return (TemplateSyntaxError, SecurityError, TemplateError, UndefinedError, Undefined, MAX_PRODUCED, TemplateLimitError,
            check_printable, check_value, render_budget)


def _template_line(error: BaseException, source: str) -> int | None:
    """The template line a runtime error happened on, for a template of several lines.

    Jinja rewrites the traceback to template lines; a frame it could not map keeps a line of the
    generated code, which is why a line past the template's end is not trusted.
    """
    lines = source.count("\n") + 1
    if lines == 1:
        return None
    line = None
    trace = error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<template>" and trace.tb_lineno <= lines:
            line = trace.tb_lineno
        trace = trace.tb_next
    return line


@functools.lru_cache(maxsize=4096)
def _compiled_expression(source: str) -> Any:
    """The compiled lone ``{{ expression }}`` of ``source``, or None when it is mixed text.

    Compiling costs far more than rendering, and a batch renders the same templates thousands of times.
    """
    match = _SINGLE_EXPRESSION.match(source)
    if match and "{{" not in match["expr"] and "}}" not in match["expr"]:
        return environment().compile_expression(match["expr"].strip(), undefined_to_none=False)
    return None


@functools.lru_cache(maxsize=4096)
def _compiled_template(source: str) -> Any:
    return environment().from_string(source)


class _Namespace:
    """A read-only name -> value table whose unknown keys raise a helpful TemplateReferenceError.

    Deliberately not a ``Mapping``: its methods (``items``, ``keys``...) would shadow a var or
    step of the same name in ``vars.items``.
    """

    _what = "name"

    def __init__(self, items: Mapping[str, Any]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        try:
            return self._items[key]
        except KeyError:
            raise TemplateReferenceError(self._unknown(key)) from None

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key == "jinja_pass_arg":
            raise AttributeError(key)
        return self[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def _unknown(self, key: str) -> str:
        known = sorted(self._items)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        listing = ", ".join(known) if known else "none"
        return f"unknown {self._what} '{key}'{hint} (known: {listing})"


class VarsNamespace(_Namespace):
    """``vars`` in templates."""

    _what = "var"


class StepsNamespace(_Namespace):
    """``steps`` in templates: step id -> StepOutputs."""

    _what = "step"


class OutputList(list):
    """A step's ``images``: indexing past the end names the step and its count."""

    def __init__(self, items: list[Any], owner: str, noun: str = "image") -> None:
        super().__init__(items)
        self.owner = owner
        self.noun = noun

    def __getitem__(self, index: Any) -> Any:
        try:
            return super().__getitem__(index)
        except IndexError:
            field = "images" if self.noun == "image" else ("items" if self.noun == "item" else self.noun)
            raise TemplateReferenceError(
                f"{self.owner}.{field}[{index}] does not exist: {self.owner} produced {len(self)} {self.noun}(s)"
            ) from None


class StepOutputs:
    """What one step produced, as templates see it: ``images``, ``video`` and ``text``."""

    def __init__(self, step_id: str, model: str, available: Mapping[str, Any]) -> None:
        self._step_id = step_id
        self._model = model
        self._available = dict(available)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "jinja_pass_arg":
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Any:
        if name not in self._available:
            produces = ", ".join(self._available) or "nothing"
            raise TemplateReferenceError(
                f"step '{self._step_id}' ({self._model}) has no output '{name}'; it produces: {produces}"
            )
        return self._available[name]
