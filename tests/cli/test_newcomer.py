"""A newcomer's first hour: the small surprises the issue lists, each with a fix."""

from __future__ import annotations

from wanflow.cli.main import main
from wanflow.cli.values import terminal_safe

ESC = "name: esc\nvars: {subject: teapot, n: 1}\nsteps:\n  a: {model: wan2.6-t2i, prompt: 'a {{ vars.subject }}', params: {n: 1}}\n"


def test_a_list_for_a_text_var_in_a_vars_file_is_refused_at_its_line(project, write_pipeline, capsys):
    path = write_pipeline(ESC)
    (project / "vars.yaml").write_text("n: 2\nsubject: [a, b]\n")
    assert main(["validate", str(path), "--vars-file", "vars.yaml"]) == 2
    err = capsys.readouterr().err
    assert "vars.yaml:2:" in err and "var 'subject' is text; got a list" in err


def test_escape_sequences_in_vars_are_shown_escaped(project, write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(ESC)
    assert main(["run", str(path)]) == 0
    capsys.readouterr()
    assert main(["explain", str(path), "--var", "subject=red\x1b[31mRED\x07"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "red\\x1b[31mRED\\x07" in out
    assert main(["run", str(path), "--var", "n=\x1b]0;pwned\x07"]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b]0;pwned\\x07" in err
    assert terminal_safe("tab\tand\nnewline stay") == "tab\tand\nnewline stay"


def test_a_skipped_step_prints_no_seed_none(project, write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline("name: sk\nsteps:\n  a: {model: wan2.6-t2i, prompt: x, params: {n: 1}, when: '{{ false }}'}\n"
                          "  b: {model: wan2.6-t2i, prompt: y, params: {n: 1}}\n")
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    skipped = next(line for line in out.splitlines() if " a " in line and "skipped" in line)
    assert "None" not in skipped and "seed" not in skipped
    assert "seed" in next(line for line in out.splitlines() if " b " in line and "ran" in line)


ORDERED = """name: ord
vars: {c: red}
steps:
  zeta: {model: wan2.6-t2i, prompt: 'a {{ vars.c }} cup', params: {n: 1}}
  alpha: {model: wan2.6-image, images: ['{{ steps.zeta.images[0] }}'], prompt: 'make it {{ vars.c }}', params: {n: 1}}
"""


def test_runs_show_and_diff_list_steps_in_pipeline_order(project, write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(ORDERED)
    assert main(["run", str(path)]) == 0
    assert main(["run", str(path), "--var", "c=blue"]) == 0
    capsys.readouterr()
    assert main(["runs", "show", "latest"]) == 0
    out = capsys.readouterr().out
    assert out.index(" zeta ") < out.index(" alpha ")
    assert main(["runs", "diff", "latest"]) == 0
    out = capsys.readouterr().out
    assert out.index("step zeta") < out.index("step alpha")


BATCH = "name: bt\nvars: {colour: red, size: small}\nsteps:\n  a: {model: wan2.6-t2i, prompt: 'a {{ vars.size }} {{ vars.colour }} cup', params: {n: 1}}\n"


def test_a_misspelt_header_column_is_one_error_at_the_header_line(project, write_pipeline, capsys):
    path = write_pipeline(BATCH)
    (project / "rows.csv").write_text("colour,szie\nred,big\nblue,big\ngreen,big\n")
    assert main(["plan", str(path), "--batch", "rows.csv"]) == 2
    err = capsys.readouterr().err
    assert err.count("szie") == 1 and "rows.csv:1:1" in err and "did you mean 'size'?" in err


def test_a_var_set_by_both_var_and_the_batch_file_is_refused(project, write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(BATCH)
    (project / "rows.csv").write_text("colour\nred\nblue\n")
    assert main(["run", str(path), "--batch", "rows.csv", "--var", "colour=green"]) == 2
    err = capsys.readouterr().err
    assert "var 'colour' is set both by --var/--vars-file and by the batch file's 'colour' column" in err
    assert use_instrumented_local.calls == []
    assert main(["run", str(path), "--batch", "rows.csv", "--var", "size=big"]) == 0  # no overlap: fine


MATRIX = """name: mx
vars: {style: a, word: teapot}
matrix: {style: [a, b]}
steps:
  s: {model: wan2.6-t2i, prompt: '{{ vars.style }} {{ vars.word }}', params: {n: 1}}
"""


def test_frozen_over_a_matrix_names_the_instance(project, write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(MATRIX)
    assert main(["run", str(path)]) == 0
    capsys.readouterr()
    assert main(["run", str(path), "--frozen", "--var", "word=cup"]) == 2
    err = capsys.readouterr().err
    assert "instance 'style-a'" in err and "prompt" in err, err


def test_a_report_edge_that_skips_a_column_never_crosses_another_box():
    import re

    from wanflow.report.graph_svg import NODE_H, Graph, render_svg

    graph = Graph(steps={"a": "wan2.6-t2i", "b": "wan2.6-image", "c": "wan2.6-i2v"},
                  edges=[("a", "b", False), ("b", "c", False)], outputs={"poster": ["a"]})
    svg = render_svg(graph, {})
    boxes = [(float(x), float(y)) for x, y in re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="210" height="50" rx="8"', svg)]
    bottom = max(y for _, y in boxes) + NODE_H
    dashed = re.search(r'<path d="([^"]+)"[^>]*stroke-dasharray', svg).group(1)
    lane = re.search(r" L[\d.]+,([\d.]+)", dashed)
    assert lane is not None and float(lane.group(1)) > bottom  # a→poster runs below b and c
    height = float(re.search(r'height="([\d.]+)" role="img"', svg).group(1))
    assert float(lane.group(1)) < height


def test_an_rgba_input_flattened_onto_white_is_warned_about(project, write_pipeline, capsys, use_instrumented_local):
    from PIL import Image

    Image.new("RGBA", (800, 800), (255, 0, 0, 90)).save(project / "logo.png")
    path = write_pipeline("name: rgba\nsteps:\n  v: {model: wan2.6-i2v, image: logo.png, prompt: spin,"
                          " params: {resolution: 720P, duration: 5, audio: false}}\n")
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "transparency was flattened onto white" in out


def test_an_edit_whose_output_aspect_follows_its_last_image_says_so(project, write_pipeline, capsys, use_instrumented_local):
    from PIL import Image

    Image.new("RGB", (1200, 800), (200, 40, 40)).save(project / "wide.png")
    Image.new("RGB", (800, 1200), (40, 40, 200)).save(project / "tall.png")
    path = write_pipeline("name: fuse\nsteps:\n  e: {model: wan2.6-image, images: [wide.png, tall.png],"
                          " prompt: merge them, params: {n: 1}}\n")
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "takes the aspect of the last input image (800×1200), not of 1200×800" in out
    # An explicit size decides the aspect itself, and inputs of one aspect leave nothing to say.
    path = write_pipeline("name: fuse\nsteps:\n  e: {model: wan2.6-image, images: [wide.png, tall.png],"
                          " prompt: merge them, params: {n: 1, size: 1024*1024}}\n")
    assert main(["run", str(path)]) == 0
    assert "last input image" not in capsys.readouterr().out
    path = write_pipeline("name: fuse\nsteps:\n  e: {model: wan2.6-image, images: [wide.png, wide.png],"
                          " prompt: merge them, params: {n: 1}}\n")
    assert main(["run", str(path)]) == 0
    assert "last input image" not in capsys.readouterr().out
