"""Every documented request rule, accepted at its bounds and rejected past them.

Each case is a one-step (or two-step) pipeline loaded through ``load_pipeline``, the same entry
point ``wanflow validate`` uses, so the diagnostics are checked with their field, code and line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from PIL import Image

import wanflow
from wanflow.catalog.loader import load_catalog


@pytest.fixture
def check(project: Path):
    """Load a pipeline made of ``steps`` YAML; return (errors, warnings) as formatted lines."""
    Image.new("RGB", (800, 800), (10, 120, 200)).save(project / "photo.png")

    def run(steps: str, strict: bool = False, header: str = "") -> tuple[list[str], list[str]]:
        text = f"name: rules\n{header}steps:\n" + textwrap.indent(textwrap.dedent(steps).strip("\n"), "  ") + "\n"
        path = project / "rules.yaml"
        path.write_text(text)
        try:
            pipeline = wanflow.load_pipeline(path, strict=strict)
        except wanflow.PipelineError as error:
            return [d.format() for d in error.diagnostics], []
        return [], [d.format() for d in pipeline.warnings]

    return run


def only(lines: list[str], *fragments: str) -> str:
    """The one line containing every fragment."""
    found = [line for line in lines if all(fragment in line for fragment in fragments)]
    assert len(found) == 1, f"{fragments} in {lines}"
    return found[0]


T2I = "a:\n  model: wan26_t2i\n  prompt: {prompt}\n  params: {{n: 1{extra}}}\n"


def t2i(prompt: str = "a cat", extra: str = "") -> str:
    return T2I.format(prompt=prompt, extra=extra)


# --- text limits ---------------------------------------------------------------------------------

def test_t2i_prompt_at_2100_characters_is_silent(check):
    errors, warnings = check(t2i("x" * 2100))
    assert errors == [] and warnings == []


def test_t2i_prompt_over_2100_warns_with_what_the_model_sees_and_strict_rejects(check, project):
    prompt = "a" * 2090 + "0123456789" + "TAIL-DROPPED"
    errors, warnings = check(t2i(prompt))
    line = only(warnings, "steps.a.prompt", "2,112 characters")
    assert "keeps the first 2,100" in line and "ending '…" in line and "0123456789'" in line
    assert "dropped from 'TAIL-DROPPED" in line and "001015006" in line
    pipeline = wanflow.load_pipeline(project / "rules.yaml")
    from wanflow.pipelines.static_checks import static_requests

    assert static_requests(pipeline)["a"].prompt == prompt[:2100]
    errors, _ = check(t2i(prompt), strict=True)
    assert only(errors, "steps.a.prompt", "rules.yaml:5:", "[service code 001015006]")


def test_chinese_characters_count_one_each(check):
    assert check(t2i("猫" * 2100)) == ([], [])
    _, warnings = check(t2i("猫" * 2101))
    only(warnings, "2,101 characters")


def test_empty_prompt_is_an_error(check):
    errors, _ = check(t2i('" "'))
    only(errors, "steps.a.prompt", "is empty", "001015006")


def test_negative_prompt_limit(check):
    ok = "a:\n  model: wan2.6-t2i\n  prompt: x\n  negative_prompt: {neg}\n  params: {{n: 1}}\n"
    assert check(ok.format(neg="n" * 500)) == ([], [])
    _, warnings = check(ok.format(neg="n" * 501))
    only(warnings, "steps.a.negative_prompt", "501 characters", "001015007")
    errors, _ = check(ok.format(neg="n" * 501), strict=True)
    only(errors, "steps.a.negative_prompt")


@pytest.mark.parametrize("model, limit", [("wan2.6-image", 2000), ("wan2.6-i2i", 2000), ("wan2.6-i2v", 1500)])
def test_per_model_prompt_limits(check, model, limit):
    slot = "image: photo.png" if model.endswith("i2v") else "images: [photo.png]"
    params = "{{resolution: 720P}}" if model.endswith("i2v") else "{{n: 1}}"
    body = f"a:\n  model: {model}\n  {slot}\n  prompt: {{prompt}}\n  params: {params}\n"
    assert check(body.format(prompt="p" * limit)) == ([], [])
    _, warnings = check(body.format(prompt="p" * (limit + 1)))
    only(warnings, "steps.a.prompt", f"keeps the first {limit:,}")


# --- n, seed, max_images -------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 4])
def test_t2i_n_in_range(check, n):
    assert check(f"a: {{model: wan2.6-t2i, prompt: x, params: {{n: {n}}}}}") == ([], [])


@pytest.mark.parametrize("n", [0, 5])
def test_t2i_n_out_of_range(check, n):
    errors, _ = check(f"a: {{model: wan2.6-t2i, prompt: x, params: {{n: {n}}}}}")
    only(errors, "steps.a.params.n", f"{n} is out of range", "an integer from 1 to 4", "001015008")


def test_t2i_costly_default_n_warns_only_when_not_set(check):
    _, warnings = check("a: {model: wan2.6-t2i, prompt: x}")
    only(warnings, "steps.a.params.n", "n defaults to 4", "rules.yaml:3:")
    assert check("a: {model: wan2.6-t2i, prompt: x, params: {n: 4}}") == ([], [])


@pytest.mark.parametrize("seed", [0, 2147483647])
def test_seed_bounds_accepted(check, seed):
    assert check(f"a: {{model: wan2.6-t2i, prompt: x, seed: {seed}, params: {{n: 1}}}}") == ([], [])


@pytest.mark.parametrize("seed", [-1, 2147483648])
def test_seed_out_of_range(check, seed):
    errors, _ = check(f"a: {{model: wan2.6-t2i, prompt: x, seed: {seed}, params: {{n: 1}}}}")
    only(errors, "steps.a.seed", "0 to 2147483647")


def test_templated_seed_out_of_range_names_the_service_code(check):
    errors, _ = check("a: {model: wan2.6-i2i, prompt: x, images: [photo.png], seed: '{{ vars.s }}'}", header="vars: {s: 2147483648}\n")
    only(errors, "steps.a.seed", "out of range", "001021014")


def test_max_images_only_in_interleaved_mode(check):
    errors, _ = check("a: {model: wan2.6-i2i, prompt: x, images: [photo.png], params: {max_images: 2}}")
    only(errors, "steps.a.params.max_images", "only applies when enable_interleave is true", "001021012")
    assert check("a: {model: wan2.6-i2i, prompt: x, params: {enable_interleave: true, max_images: 2}}") == ([], [])


@pytest.mark.parametrize("value, ok", [(1, True), (5, True), (0, False), (6, False)])
def test_max_images_range(check, value, ok):
    errors, _ = check(f"a: {{model: wan2.6-i2i, prompt: x, params: {{enable_interleave: true, max_images: {value}}}}}")
    if ok:
        assert errors == []
    else:
        only(errors, "steps.a.params.max_images", "out of range", "001021013")


def test_n_fixed_at_one_in_interleaved_mode(check):
    errors, _ = check("a: {model: wan2.6-i2i, prompt: x, params: {enable_interleave: true, n: 2}}")
    only(errors, "steps.a.params.n", "exactly 1", "001021010")
    assert check("a: {model: wan2.6-i2i, prompt: x, params: {enable_interleave: true, n: 1}}") == ([], [])


def test_prompt_extend_only_in_edit_mode(check):
    _, warnings = check("a: {model: wan2.6-image, prompt: x, params: {enable_interleave: true, prompt_extend: true}}")
    only(warnings, "steps.a.params.prompt_extend", "only applies when enable_interleave is false", "no effect")
    assert check("a: {model: wan2.6-image, prompt: x, images: [photo.png], params: {prompt_extend: false}}") == ([], [])


# --- image counts by mode ------------------------------------------------------------------------

@pytest.mark.parametrize("count, ok", [(0, False), (1, True), (4, True), (5, False)])
def test_edit_mode_takes_one_to_four_images(check, count, ok):
    images = ", ".join(["photo.png"] * count)
    errors, _ = check(f"a: {{model: wan2.6-i2i, prompt: x, images: [{images}]}}" if count else "a: {model: wan2.6-i2i, prompt: x}")
    if ok:
        assert errors == []
    else:
        only(errors, "enable_interleave=false", "001021008")


@pytest.mark.parametrize("count, ok", [(0, True), (1, True), (2, False)])
def test_interleaved_mode_takes_zero_or_one_image(check, count, ok):
    images = f", images: [{', '.join(['photo.png'] * count)}]" if count else ""
    errors, _ = check(f"a: {{model: wan2.6-i2i, prompt: x, params: {{enable_interleave: true}}{images}}}")
    if ok:
        assert errors == []
    else:
        only(errors, "steps.a.images", "got 2 images when enable_interleave=true", "0 to 1", "001021007")


# --- sizes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", ["1440*1440", "1280*1280", "1104*1472", "1696*960", "720*2880", "2880*720"])
def test_t2i_sizes_accepted_without_warning(check, size):
    assert check(t2i(extra=f", size: '{size}'")) == ([], [])


@pytest.mark.parametrize("size", ["768*768", "1024*1024"])
def test_t2i_disputed_sizes_are_accepted_with_a_warning(check, size):
    errors, warnings = check(t2i(extra=f", size: '{size}'"))
    assert errors == []
    only(warnings, "steps.a.params.size", "disputed range")


@pytest.mark.parametrize(
    "size, fragment, code",
    [
        ("1280x1280", "not in the form WIDTH*HEIGHT", "001015010"),
        ("1280.5*1280", "must be two integers", "001015013"),
        ("767*768", "589,056 pixels", "001015011"),
        ("1441*1440", "2,075,040 pixels", "001015011"),
        ("700*2900", "aspect ratio 0.241", "001015012"),
        ("2900*700", "aspect ratio 4.14", "001015012"),
    ],
)
def test_t2i_size_rules(check, size, fragment, code):
    errors, _ = check(t2i(extra=f", size: '{size}'"))
    only(errors, "steps.a.params.size", fragment, code)


@pytest.mark.parametrize("size, ok", [("1K", True), ("2K", True), ("2048*2048", True), ("3K", False), ("2049*2048", False)])
def test_image_edit_mode_sizes(check, size, ok):
    errors, _ = check(f"a: {{model: wan2.6-image, prompt: x, images: [photo.png], params: {{size: '{size}'}}}}")
    assert (errors == []) is ok, errors


@pytest.mark.parametrize("size, ok", [("1280*1280", True), ("768*768", True), ("2048*2048", False), ("1K", False)])
def test_image_interleaved_mode_sizes(check, size, ok):
    errors, _ = check(f"a: {{model: wan2.6-image, prompt: x, params: {{enable_interleave: true, size: '{size}'}}}}")
    assert (errors == []) is ok, errors


def test_i2i_size_codes(check):
    errors, _ = check("a: {model: wan2.6-i2i, prompt: x, images: [photo.png], params: {size: '2048*2048'}}")
    only(errors, "steps.a.params.size", "001021016")


# --- image-to-video ------------------------------------------------------------------------------

I2V = "a: {{model: wan2.6-i2v, image: photo.png, params: {{resolution: {res}, duration: {dur}{extra}}}}}"


@pytest.mark.parametrize("res", ["720P", "1080P"])
def test_i2v_resolutions(check, res):
    assert check(I2V.format(res=res, dur=5, extra="")) == ([], [])


def test_i2v_unknown_resolution(check):
    errors, _ = check(I2V.format(res="480P", dur=5, extra=""))
    only(errors, "steps.a.params.resolution", "'480P' is not allowed", "720P, 1080P")


def test_i2v_costly_default_resolution_warns(check):
    _, warnings = check("a: {model: wan2.6-i2v, image: photo.png, params: {duration: 5}}")
    only(warnings, "steps.a.params.resolution", "1080P")


@pytest.mark.parametrize("duration", [5, 10, 15])
def test_i2v_listed_durations(check, duration):
    assert check(I2V.format(res="720P", dur=duration, extra="")) == ([], [])


@pytest.mark.parametrize("duration", [2, 7, 14])
def test_i2v_disputed_durations_warn(check, duration):
    errors, warnings = check(I2V.format(res="720P", dur=duration, extra=""))
    assert errors == []
    only(warnings, "steps.a.params.duration", "not one of the listed options")


@pytest.mark.parametrize("duration", [1, 16])
def test_i2v_duration_out_of_range(check, duration):
    errors, _ = check(I2V.format(res="720P", dur=duration, extra=""))
    only(errors, "steps.a.params.duration", "2 to 15")


def test_shot_type_only_takes_effect_with_prompt_extend(check):
    _, warnings = check(I2V.format(res="720P", dur=5, extra=", shot_type: multi, prompt_extend: false"))
    only(warnings, "steps.a.params.shot_type", "only takes effect when prompt_extend is true")
    assert check(I2V.format(res="720P", dur=5, extra=", shot_type: multi, prompt_extend: true")) == ([], [])


def test_audio_false_wins_over_an_audio_file(check, project):
    import wave

    with wave.open(str(project / "voice.wav"), "wb") as handle:
        handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(8000)
        handle.writeframes(b"\x00\x00" * 8000 * 4)
    _, warnings = check("a: {model: wan2.6-i2v, image: photo.png, audio: voice.wav, params: {resolution: 720P, audio: false}}")
    only(warnings, "steps.a.audio", "ignored because audio is false", "billed as silent")
    assert check("a: {model: wan2.6-i2v, image: photo.png, audio: voice.wav, params: {resolution: 720P}}") == ([], [])


def test_i2v_needs_an_image(check):
    errors, _ = check("a: {model: wan2.6-i2v, prompt: x, params: {resolution: 720P}}")
    only(errors, "needs image:")


# --- text-to-video, first and last frame, reference-to-video -------------------------------------

def _clip(path: Path, seconds: int) -> None:
    from test_wan_family import clip

    clip(path, seconds)


def test_kf2v_is_fixed_at_five_seconds_at_its_line(check):
    steps = "a:\n  model: wan2.2-kf2v-flash\n  first_frame: photo.png\n  last_frame: photo.png\n  params: {duration: 10}\n"
    errors, _ = check(steps)
    line = only(errors, "steps.a.params.duration", "fixed at 5")
    assert "rules.yaml:7:24: " in line  # line 7 of the written file (two header lines), at the value
    assert check(steps.replace("duration: 10", "duration: 5")) == ([], [])


def test_kf2v_needs_both_frames(check):
    errors, _ = check("a: {model: wan2.1-kf2v-plus, first_frame: photo.png}")
    only(errors, "steps.a.last_frame", "needs last_frame:")


def test_wan26_t2v_has_no_480p(check):
    errors, _ = check("a: {model: wan2.6-t2v, prompt: x, params: {size: '832*480'}}")
    only(errors, "steps.a.params.size", "'832*480' is not allowed", "720P: 1280*720", "1080P: 1920*1080")
    assert check("a: {model: wan2.5-t2v-preview, prompt: x, params: {size: '832*480', duration: 5}}") == ([], [])


def test_t2v_costly_default_size_warns(check):
    _, warnings = check("a: {model: wan2.6-t2v, prompt: x, params: {duration: 5}}")
    only(warnings, "steps.a.params.size", "1080P")


@pytest.mark.parametrize("model", ["wan2.6-t2v", "wan2.6-r2v", "wan2.7-t2v", "wan2.6-i2v-flash"])
def test_multi_shot_needs_prompt_extend(check, project, model):
    _clip(project / "ref.mp4", 3)
    inputs = {"wan2.6-r2v": "references: [ref.mp4], ", "wan2.6-i2v-flash": "image: photo.png, "}.get(model, "")
    errors, _ = check(f"a: {{model: {model}, {inputs}prompt: x, params: {{shot_type: multi, prompt_extend: false}}}}")
    only(errors, "steps.a.params.shot_type", "multi needs prompt_extend: true")


@pytest.mark.parametrize(("count", "fragment"), [(0, "needs references:"), (4, "got 4 references")])
def test_r2v_takes_one_to_three_references(check, project, count, fragment):
    _clip(project / "ref.mp4", 3)
    refs = "[" + ", ".join(["ref.mp4"] * count) + "]"
    errors, _ = check(f"a: {{model: wan2.6-r2v, references: {refs}, prompt: character1 waves, params: {{size: 1280*720}}}}")
    only(errors, "steps.a.references", fragment, "1 to 3")


@pytest.mark.parametrize(("seconds", "ok"), [(1, False), (2, True), (30, True), (31, True)])
def test_r2v_references_last_two_to_thirty_seconds_and_longer_ones_are_trimmed(check, project, seconds, ok):
    _clip(project / "ref.mp4", seconds)
    step = "a: {model: wan2.6-r2v, references: [ref.mp4], prompt: character1 waves, params: {size: 1280*720}}"
    errors, _ = check(step)
    if ok:
        assert errors == []
    else:
        only(errors, "steps.a.references", "2 to 30 s")
    if seconds > 30:  # trimming is conforming: `conform: false` makes it an error
        errors, _ = check(step.replace("prompt:", "conform: false, prompt:"))
        only(errors, "steps.a.references", "lasts 31.0 s", "conform: false forbids adapting it")


def test_r2v_prompt_names_its_references_in_range(check, project):
    _clip(project / "ref.mp4", 3)
    step = "a: {{model: wan2.6-r2v, references: [ref.mp4, ref.mp4], prompt: {prompt}, params: {{size: 1280*720}}}}"
    errors, _ = check(step.format(prompt="character1 greets character3"))
    only(errors, "steps.a.prompt", "names character3, but the step gives 2 references", "character1 to character2")
    assert check(step.format(prompt="character1 greets character2")) == ([], [])
    _, warnings = check(step.format(prompt="two friends meet"))
    only(warnings, "steps.a.prompt", "names none of its references")


def test_r2v_references_must_be_videos(check):
    errors, _ = check("a: {model: wan2.6-r2v, references: [photo.png], prompt: character1, params: {size: 1280*720}}")
    only(errors, "steps.a.references", "needs video")


def test_a_model_without_audio_gets_none(check, project):
    import wave

    with wave.open(str(project / "voice.wav"), "wb") as handle:
        handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(8000)
        handle.writeframes(b"\x00\x00" * 8000 * 4)
    errors, _ = check("a: {model: wan2.2-i2v-flash, image: photo.png, audio: voice.wav, params: {audio: true}}")
    only(errors, "steps.a.audio", "does not take audio:")
    only(errors, "steps.a.params.audio", "has no parameter 'audio'")
    errors, _ = check("a: {model: wan2.6-r2v-flash, references: [photo.png], prompt: x, params: {audio: false}}")
    only(errors, "steps.a.params.audio", "has no parameter 'audio'")


@pytest.mark.parametrize(("model", "duration", "fragment"), [
    ("wan2.2-t2v-plus", 10, "fixed at 5"), ("wan2.2-i2v-plus", 4, "fixed at 5"),
    ("wan2.5-t2v-preview", 7, "one of 5, 10"), ("wan2.6-r2v", 15, "one of 5, 10"), ("wan2.7-r2v", 12, "2 to 10"),
])
def test_durations_per_model(check, project, model, duration, fragment):
    _clip(project / "ref.mp4", 3)
    kind = load_catalog().get(model).kind
    inputs = {"i2v": "image: photo.png, ", "r2v": "references: [ref.mp4], "}.get(kind, "")
    errors, _ = check(f"a: {{model: {model}, {inputs}prompt: x, params: {{duration: {duration}}}}}")
    only(errors, "steps.a.params.duration", fragment)


# --- aliases and catalog shape -------------------------------------------------------------------

def test_every_vtrix_id_is_an_alias():
    catalog = load_catalog()
    for vtrix_id, name in [("wan26_t2i", "wan2.6-t2i"), ("wan26_image", "wan2.6-image"), ("wan26_i2i", "wan2.6-i2i"),
                           ("wan26_i2v", "wan2.6-i2v"), ("WAN2.6-T2I", "wan2.6-t2i")]:
        assert catalog.get(vtrix_id).name == name
    assert catalog.get("wan2.5-i2i-preview").providers.keys() == {"dashscope"}


def test_models_doc_is_generated_from_the_catalog():
    from wanflow.catalog.docs import models_markdown

    page = (Path(__file__).parents[2] / "docs" / "models.md").read_text("utf-8")
    assert page == models_markdown(), "regenerate with: wanflow models --markdown > docs/models.md"


def test_a_price_that_depends_on_a_param_not_given_yet_is_the_dearest_never_zero():
    """A paid model priced by a param the request does not carry yet (animate's required mode) is
    estimated at its dearest value, so a budget is never checked against $0."""
    from wanflow.catalog.loader import load_catalog
    from wanflow.catalog.pricing import list_price

    model = load_catalog().models["wan2.2-animate-move"]
    unknown = list_price(model, {"duration": 10})
    assert unknown.usd == pytest.approx(10 * 0.09) and "up to wan-pro" in unknown.basis
    assert list_price(model, {"duration": 10, "mode": "wan-std"}).usd == pytest.approx(10 * 0.06)


def test_the_parsed_catalog_is_kept_like_bytecode_and_follows_edits(tmp_path, monkeypatch):
    """models.yaml's parsed copy sits in __pycache__ under the file's size and mtime: an edit is
    read at once (the stale copy goes), a damaged copy is parsed again, and nothing is written
    where Python would write no bytecode."""
    import sys

    import yaml

    from wanflow.catalog import loader

    source = tmp_path / "models.yaml"
    source.write_text("models: {a: {kind: t2i}}\n")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert loader._raw_catalog(source) == {"models": {"a": {"kind": "t2i"}}}
    assert not (tmp_path / "__pycache__").exists()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert loader._raw_catalog(source) == {"models": {"a": {"kind": "t2i"}}}
    [kept] = (tmp_path / "__pycache__").glob("models.*.marshal")
    source.write_text("models: {a: {kind: t2i}, b: {kind: t2v}}\n")
    assert loader._raw_catalog(source) == {"models": {"a": {"kind": "t2i"}, "b": {"kind": "t2v"}}}
    [fresh] = (tmp_path / "__pycache__").glob("models.*.marshal")
    assert fresh != kept
    fresh.write_bytes(b"\x00damaged")
    assert loader._raw_catalog(source) == yaml.safe_load(source.read_text())
    shipped = loader.Path(loader.__file__).with_name("models.yaml")
    assert loader._raw_catalog(shipped) == yaml.safe_load(shipped.read_text("utf-8"))
