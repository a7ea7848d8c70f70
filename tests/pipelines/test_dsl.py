"""The DSL pieces: located YAML, the JSON Schema, templates, vars and the step graph."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

import wanflow
from conftest import CHAIN, EXAMPLES
from wanflow._exceptions import TemplateProblem
from wanflow.pipelines.schema_check import pipeline_schema
from wanflow.pipelines.templating import referenced_steps, render
from wanflow.pipelines.variables import coerce_override
from wanflow.pipelines.yaml_source import load_yaml_text

# --- YAML with positions ---------------------------------------------------------------------

def test_every_value_and_key_keeps_its_line_and_column():
    document = load_yaml_text("name: x\nsteps:\n  hero:\n    model: wan2.6-t2i\n    params: {n: 2}\n", "p.yaml")
    assert document.data["steps"]["hero"]["params"] == {"n": 2}
    location = document.locate(("steps", "hero", "params", "n"))
    assert (location.line, location.column) == (5, 17)
    key = document.locate_key(("steps", "hero", "model"))
    assert (key.line, key.column) == (4, 5)
    # A whole mapping is located at its key.
    assert document.locate(("steps", "hero")).line == 3


def test_yaml_12_booleans_and_no_dates():
    document = load_yaml_text("a: no\nb: on\nc: true\nd: 2026-11-22\ne: False\n", "v.yaml")
    assert document.data == {"a": "no", "b": "on", "c": True, "d": "2026-11-22", "e": False}


def test_merge_keys_are_supported_and_may_be_overridden():
    document = load_yaml_text("base: &b {n: 1, size: 1280*1280}\nstep: {<<: *b, n: 2}\n", "m.yaml")
    assert document.data["step"] == {"n": 2, "size": "1280*1280"}


def test_duplicate_keys_are_errors():
    with pytest.raises(wanflow.PipelineError, match="duplicate key 'n'"):
        load_yaml_text("n: 1\nn: 2\n", "d.yaml")


def test_oversized_document_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("x: '" + "a" * 1_100_000 + "'\n")
    with pytest.raises(wanflow.PipelineError, match="at most 1,000,000 bytes"):
        wanflow.load_pipeline(big)


def test_non_utf8_file_is_a_clear_error(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(wanflow.PipelineError, match="not UTF-8"):
        wanflow.load_pipeline(path)


# --- JSON Schema ---------------------------------------------------------------------------------

def test_schema_is_valid_draft_2020_12_and_accepts_the_examples():
    schema = pipeline_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for example in EXAMPLES.rglob("*.yaml"):
        document = load_yaml_text(example.read_text(), str(example))
        assert list(Draft202012Validator(schema).iter_errors(document.data)) == [], example


def test_schema_errors_name_all_problems_with_allowed_values(write_pipeline):
    path = write_pipeline(
        """
        name: many
        defaults: {provider: cloud}
        steps:
          hero:
            model: wan2.6-t2i
            prompt: x
            cache: maybe
            colour: red
        """
    )
    with pytest.raises(wanflow.PipelineError) as caught:
        wanflow.load_pipeline(path)
    lines = [d.format() for d in caught.value.diagnostics]
    assert len(lines) == 3
    assert any(":2:" in line and "defaults.provider" in line and "allowed: local, dashscope, vtrix" in line for line in lines)
    assert any(":7:" in line and "steps.hero.cache" in line and "expected boolean" in line for line in lines)
    assert any(":8:" in line and "unknown field 'colour'" in line and "allowed: audio, cache" in line for line in lines)


# --- templates -----------------------------------------------------------------------------------

def test_lone_expression_keeps_its_type_and_mixed_text_renders():
    context = {"vars": {"n": 3, "names": ["a", "b"]}}
    assert render("{{ vars.n }}", context) == 3
    assert render("{{ vars.names }}", context) == ["a", "b"]
    assert render("n={{ vars.n }}", context) == "n=3"
    assert render("no template", context) == "no template"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ vars.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_sandbox_blocks_escapes(source):
    with pytest.raises(TemplateProblem):
        render(source, {"vars": {}})


def test_environment_is_not_reachable_from_templates():
    with pytest.raises(TemplateProblem):
        render("{{ environ }}", {"vars": {}})
    with pytest.raises(TemplateProblem):
        render("{{ range(10**9) | list }}", {"vars": {}})


def test_references_are_found_statically():
    refs = referenced_steps("{{ steps.hero.images[0] }} and {{ steps['edit'].video }}")
    assert refs.steps == ("hero", "edit")
    assert refs.fields == (("hero", "images"), ("edit", "video"))
    with pytest.raises(TemplateProblem, match="referenced by name"):
        referenced_steps("{% for s in steps %}{{ s }}{% endfor %}")


# --- vars ----------------------------------------------------------------------------------------

def test_overrides_take_the_type_of_the_default():
    assert coerce_override("count", "3", 1) == 3
    assert coerce_override("flag", "false", True) is False
    assert coerce_override("word", "yes", "no") == "yes"
    assert coerce_override("items", "[a, b]", ["x"]) == ["a", "b"]
    with pytest.raises(ValueError, match="is an integer"):
        coerce_override("count", "three", 1)


def test_vars_file_then_command_line(write_pipeline, project):
    path = write_pipeline(CHAIN)
    (project / "vars.yaml").write_text("subject: a lamp\n")
    pipeline = wanflow.load_pipeline(path, vars_file=project / "vars.yaml")
    assert pipeline.vars["subject"] == "a lamp"
    pipeline = wanflow.load_pipeline(path, vars_file=project / "vars.yaml", overrides={"subject": "a chair"})
    assert pipeline.vars["subject"] == "a chair"


def test_unknown_var_override_is_an_error(write_pipeline):
    with pytest.raises(wanflow.PipelineError, match="unknown var 'subjct'; did you mean 'subject'"):
        wanflow.load_pipeline(write_pipeline(CHAIN), overrides={"subjct": "x"})


# --- graph ---------------------------------------------------------------------------------------

def test_dependencies_come_from_references_and_needs(write_pipeline):
    path = write_pipeline(CHAIN.replace("    prompt: an unrelated landscape", "    prompt: an unrelated landscape\n    needs: [edit]"))
    pipeline = wanflow.load_pipeline(path)
    assert pipeline.steps["edit"].depends_on == ("hero",)
    assert pipeline.steps["other"].depends_on == ("edit",)
    assert pipeline.order() == ["hero", "edit", "other"]


def test_defaults_params_apply_only_where_the_model_has_them(write_pipeline):
    path = write_pipeline(
        """
        name: shared
        defaults: {params: {watermark: true, size: 1280*1280}}
        steps:
          hero: {model: wan2.6-t2i, prompt: x, params: {n: 1}}
          clip:
            model: wan2.6-i2v
            image: "{{ steps.hero.images[0] }}"
        """
    )
    from wanflow.pipelines.static_checks import static_requests

    requests = static_requests(wanflow.load_pipeline(path))
    assert requests["hero"].params["watermark"] is True and requests["hero"].params["size"] == "1280*1280"
    assert requests["clip"].params["watermark"] is True and "size" not in requests["clip"].params
    assert requests["hero"].explicit_params == {"watermark", "size", "n"}


def test_mode_dependent_defaults(write_pipeline):
    path = write_pipeline(
        """
        name: modes
        steps:
          edit: {model: wan2.6-image, prompt: x, images: [img.png]}
          story: {model: wan2.6-image, prompt: x, params: {enable_interleave: true, n: 1}}
        """
    )
    from PIL import Image

    Image.new("RGB", (400, 400)).save(path.parent / "img.png")
    from wanflow.pipelines.static_checks import static_requests

    requests = static_requests(wanflow.load_pipeline(path))
    assert "max_images" not in requests["edit"].params  # only valid in interleaved mode
    assert requests["story"].params["max_images"] == 5
    assert "prompt_extend" not in requests["story"].params


def test_mermaid_graph_lists_steps_edges_and_outputs():
    pipeline = wanflow.load_pipeline(EXAMPLES / "product-ad/product-ad.yaml")
    from wanflow.pipelines import to_mermaid

    text = to_mermaid(pipeline)
    assert text.startswith("flowchart LR\n")
    assert "  hero --> beach\n" in text and "  city --> city_clip\n" in text
    assert "beach -.-> out_poster" in text
