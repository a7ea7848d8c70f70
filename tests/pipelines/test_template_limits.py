"""Template bombs are refused quickly and cheaply; ordinary templates are not affected."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from wanflow._exceptions import TemplateProblem
from wanflow.cli.main import main
from wanflow.pipelines import template_limits
from wanflow.pipelines.templating import VarsNamespace, render

CONTEXT = {"vars": VarsNamespace({"product": "teapot", "colors": ["red", "blue"], "n": 3, "big": 10**100}),
           "steps": {}, "pipeline": {"name": "p"}}

BOMBS = {
    "{{ 'a' * 10**9 }}": "the repetition would be 1,000,000,000 characters long (at most 1,000,000)",
    "{{ [0] * 10**9 }}": "the repetition would have 1,000,000,000 items (at most 100,000)",
    "{{ 10 ** 100000000 }}": "the power would be an integer of more than 4,000 digits",
    "{{ vars.big ** 30 * vars.big ** 30 }}": "the product would be an integer of more than 4,000 digits",
    "{{ 7 ** 5000 }}": "the result of '**' would be an integer of more than 4,000 digits",
    "{{ ('a' * 600000) ~ ('b' * 600000) }}": "the '~' join would be 1,200,000 characters long",
    "{{ ('a' * 600000) + ('b' * 600000) }}": "the sum would be 1,200,000 characters long",
    "{{ '%1000000000s' % 'x' }}": "the formatted text would be 1,000,000,0",
    "{{ '{:>1000000000}'.format('x') }}": "the formatted text would be 1,000,000,0",
    "{{ '{:{}}'.format('x', 10**9) }}": "format() was given 1,000,000,000",
    "{{ 'x'.zfill(10**9) }}": "zfill() was given 1,000,000,000",
    "{{ (1).to_bytes(10**9, 'big') }}": "to_bytes() was given 1,000,000,000",
    "{{ ('a' * 100000).replace('a', 'bbbbbbbbbbbbbbbbbbbbb') }}": "the replaced text would be 2,100,000 characters",
    "{{ ('a' * 900000) | replace('', 'b') }}": "the replaced text would be",
    "{{ 'a' | center(10**9) }}": "the centred text would be 1,000,000,000 characters",
    "{{ ('a\n' * 400000) | indent(100) }}": "the indented text would be",
    "{{ (['a' * 100000] * 1000) | join }}": "the joined text would be",
    "{{ (['a' * 100000] * 1000) }}": "as text would be",
    "{{ [1] | batch(10**9, 0) | list }}": "'linecount' would have 1,000,000,000 items",
    "{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}": "calls nest more than 20 levels deep",
    "{% macro f(x) %}{{ f(x ~ x) }}{% endmacro %}{{ f('abcdefgh') }}": "the '~' join would be",
    "{% set l = ('x' * 1000) | list %}{% for a in l %}{% for b in l %}{% for c in l %}{% endfor %}{% endfor %}{% endfor %}":
        "more than 1,000,000 loop iterations, calls and operations",
    "{% set l = ('x' * 1000) | list %}{% set big = 'y' * 900000 %}{% macro m() %}{% for a in l %}{{ big ~ a }}"
    "{% endfor %}{% endmacro %}{{ m() }}": "builds more than 16,000,000 characters and items in all",
    "{% for a in ('x' * 2000) | list %}{% for b in ('y' * 500) | list %}{{ 'z' * 1000 }}{% endfor %}{% endfor %}":
        "the rendered text would be more than 1,000,000 characters long",
    "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}": "the template nests too deeply",
    "{% if 1 %}" * 60 + "x" + "{% endif %}" * 60: "nests expressions or blocks more than 50 levels deep",
}


@pytest.mark.parametrize("source", list(BOMBS), ids=[f"bomb{i}" for i in range(len(BOMBS))])
def test_a_bomb_is_refused_within_the_bounds(source, monkeypatch):
    # Each bomb must meet its own bound; the wall-clock bound (tested below) would otherwise win on a busy machine.
    monkeypatch.setattr(template_limits, "MAX_SECONDS", 60.0)
    tracemalloc.start()
    # This thread's CPU seconds: the bound holds whatever else the machine (or a test's leftover
    # thread in this worker) runs. The largest bomb stops after a million operations, ~1.3 s here
    # under tracemalloc; unbounded, it would run a billion.
    started = time.thread_time()
    try:
        with pytest.raises(TemplateProblem) as raised:
            render(source, CONTEXT)
        elapsed = time.thread_time() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert raised.value.message.startswith("template limit: ")
    assert BOMBS[source] in raised.value.message, raised.value.message
    assert elapsed < 5.0
    assert peak < 200 * 2**20


def test_the_render_time_is_bounded(monkeypatch):
    monkeypatch.setattr(template_limits, "MAX_SECONDS", 0.05)
    monkeypatch.setattr(template_limits, "MAX_STEPS", 10**9)
    started = time.monotonic()
    with pytest.raises(TemplateProblem, match=r"took more than 0\.05 s to render"):
        render("{% set l = ('x' * 1000) | list %}{% for a in l %}{% for b in l %}{% for c in l %}{% endfor %}"
               "{% endfor %}{% endfor %}", CONTEXT)
    assert time.monotonic() - started < 1.0


ORDINARY = {
    "A {{ vars.product }} in {{ vars.colors | join(', ') }}": "A teapot in red, blue",
    "{{ vars.n * 2 }}": 6,
    "{{ vars.n ** 3 + 1 }}": 28,
    "{{ vars.product | upper | center(10) }}": "  TEAPOT  ",
    "{{ '%s and %05.1f' % (vars.product, 2.5) }}": "teapot and 002.5",
    "{{ '{} x{:>4}'.format(vars.product, vars.n) }}": "teapot x   3",
    "{% macro twice(x) %}{{ x }}{{ x }}{% endmacro %}{{ twice(vars.product) }}": "teapotteapot",
    "{% for c in vars.colors %}{{ loop.index }}:{{ c }}{% if not loop.last %}, {% endif %}{% endfor %}": "1:red, 2:blue",
    "{{ vars.colors * 2 }}": ["red", "blue", "red", "blue"],
    "{{ ('ab' ~ vars.n) | replace('b', 'c') }}": "ac3",
    "{{ vars.product.ljust(8, '.') }}": "teapot..",
}


@pytest.mark.parametrize("source", list(ORDINARY))
def test_ordinary_templates_render_as_before(source):
    assert render(source, CONTEXT) == ORDINARY[source]


def test_a_bomb_in_a_pipeline_is_a_located_exit_2(write_pipeline, capsys):
    path = write_pipeline("name: b\nsteps:\n  a:\n    model: wan2.6-t2i\n    params: {n: 1}\n    prompt: \"{{ 10 ** 100000000 }}\"\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:6:13: steps.a.prompt: template limit: the power would be an integer of more than 4,000 digits" in err
    assert "internal error" not in err and "Traceback" not in err


def test_a_breach_in_a_multiline_template_names_its_line():
    with pytest.raises(TemplateProblem) as raised:
        render("first line {{ vars.product }}\nsecond line {{ 'a' * 10**9 }}\n", CONTEXT)
    assert raised.value.line == 2
