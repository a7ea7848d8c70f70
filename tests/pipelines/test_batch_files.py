"""``--batch`` files as spreadsheets write them, and as they go wrong (the corpus in bad_batches/).

A broken file is refused before anything runs (exit 2, file:line). A bad row is reported by line
and the other rows still run (exit 1). Nothing is silently filled from defaults, dropped or merged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from wanflow.cli.main import main

CORPUS = Path(__file__).parents[1] / "bad_batches"

# file -> (line, fragment of the message): the whole file is refused, nothing runs.
REFUSED = {
    "empty.csv": (1, "the batch file is empty"),
    "blank_lines_only.csv": (1, "the batch file is empty"),
    "header_only.csv": (1, "has a header but no rows"),
    "unclosed_quote.csv": (3, "a quoted field that starts on this line is never closed"),
    "duplicate_names.csv": (4, "the instance name 'red' is also the name of line 2"),
    "duplicate_names_case.csv": (3, "the instance name 'red' is also the name of line 2 ('Red')"),
    "duplicate_names_cleaned.csv": (3, "the instance name 'red-shoe' is also the name of line 2"),
    "duplicate_names.jsonl": (2, "the instance name 'A' is also the name of line 1 ('a')"),
    "header_empty_column.csv": (1, "column 3 of the header has no name"),
    "header_duplicate_column.csv": (1, "the header names 'product' twice (columns 2 and 3)"),
    "utf16.csv": (1, "UTF-16 text; save it as UTF-8 (in Excel, save as 'CSV UTF-8')"),
    "not_utf8.csv": (2, "not UTF-8 text (byte 0xe9)"),
    "nul_byte.csv": (2, "a NUL byte is not allowed"),
    "reserved_name.csv": (2, "the instance name 'default' is reserved"),
    "all_rows_bad.jsonl": (1, "no row of the batch file can run"),
}

# file -> (instances that run, {line: fragment} of the rows that are rejected)
PARTLY_REJECTED = {
    "short_and_long_rows.csv": (["red"], {3: "2 fields, but the header has 3 (missing: animate)",
                                          4: "4 fields, but the header has 3; quote a value that contains ','"}),
    "jsonl_wrong_types.jsonl": (["red"], {2: "var 'count' is an integer; got a number (1.5)",
                                          3: "var 'animate' is a boolean; got 'maybe'",
                                          4: "var 'product' is text; got null",
                                          5: "the key 'product' appears twice",
                                          6: "NaN is not a JSON number"}),
    "bad_condition_word.csv": (["blue"], {2: "var 'animate' is a boolean; got 'flase'"}),
}

ACCEPTED = {  # what spreadsheets write: file -> instances
    "excel_bom.csv": ["red", "blue"],
    "semicolon.csv": ["red", "blue"],
    "tabs.tsv": ["red", "blue"],
    "multiline_field.csv": ["red", "blue"],
}


def test_every_batch_file_in_the_corpus_has_an_expectation():
    cases = {path.name for path in CORPUS.iterdir() if path.suffix != ".yaml"}
    assert cases == set(REFUSED) | set(PARTLY_REJECTED) | set(ACCEPTED)


@pytest.fixture
def corpus(project: Path) -> Path:
    """A copy of the corpus (a run writes its lockfile beside the pipeline)."""
    return Path(shutil.copytree(CORPUS, project / "batches"))


@pytest.mark.parametrize("name", sorted(REFUSED))
@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_broken_batch_file_is_refused_before_anything_runs(name, command, corpus, project, capsys, use_instrumented_local):
    line, fragment = REFUSED[name]
    rows = corpus / name
    code = main([command, str(corpus / "catalog.yaml"), "--batch", str(rows)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{rows}:{line}:" in err and fragment in err, err
    assert "nothing was run" in err
    assert "Traceback" not in err and "internal error" not in err
    assert use_instrumented_local.calls == []
    assert not (project / "out").exists()


@pytest.mark.parametrize("name", sorted(PARTLY_REJECTED))
def test_bad_rows_are_reported_by_line_and_the_others_run(name, corpus, capsys, use_instrumented_local):
    ran, problems = PARTLY_REJECTED[name]
    rows = corpus / name
    code = main(["run", str(corpus / "catalog.yaml"), "--batch", str(rows), "--json"])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    summary = json.loads(captured.out)
    assert sorted(summary["instances"]) == sorted(ran)
    rejected = {row["row"]: " ".join(row["problems"]) for row in summary["rejected"]}
    assert sorted(rejected) == [f"{name}:{line}" for line in sorted(problems)]
    for line, fragment in problems.items():
        assert fragment in rejected[f"{name}:{line}"]
        assert f"{name}:{line}" in captured.err
    assert "internal error" not in captured.err


@pytest.mark.parametrize("name", sorted(PARTLY_REJECTED))
def test_plan_lists_the_rejected_rows_and_still_plans_the_others(name, corpus, capsys):
    assert main(["plan", str(corpus / "catalog.yaml"), "--batch", str(corpus / name), "--json"]) == 1  # rejected rows: exit 1, as run (the rest is still planned)
    plan = json.loads(capsys.readouterr().out)
    assert sorted(plan["instances"]) == sorted(PARTLY_REJECTED[name][0])
    assert len(plan["rejected"]) == len(PARTLY_REJECTED[name][1])


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_what_spreadsheets_write_is_read_as_meant(name, corpus, capsys, use_instrumented_local):
    code = main(["run", str(corpus / "catalog.yaml"), "--batch", str(corpus / name), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert sorted(summary["instances"]) == sorted(ACCEPTED[name])
    prompts = sorted(call.prompt for call in use_instrumented_local.calls if call.step_id == "hero")
    assert prompts[0].startswith("A blue")  # the delimiter was found: the product column is not glued to the name


def test_a_semicolon_file_keeps_commas_inside_values(corpus, capsys, use_instrumented_local):
    main(["run", str(corpus / "catalog.yaml"), "--batch", str(corpus / "semicolon.csv")])
    prompts = {call.prompt for call in use_instrumented_local.calls}
    assert "A red sneaker, size 42 on a plain table" in prompts
    assert "A blue; boot on a plain table" in prompts


def test_batch_delimiter_overrides_the_sniffing(project, write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline("name: d\nvars: {product: x}\nsteps:\n  a: {model: wan2.6-t2i, prompt: '{{ vars.product }}', params: {n: 1}}\n")
    rows = project / "rows.csv"
    rows.write_text("name|product\nred|red, blue; and green\n")
    assert main(["run", str(path), "--batch", str(rows), "--batch-delimiter", "pipe"]) == 0
    assert [call.prompt for call in use_instrumented_local.calls] == ["red, blue; and green"]
    assert main(["plan", str(path), "--batch", str(rows), "--batch-delimiter", "ab"]) == 2
    assert "is not a delimiter" in capsys.readouterr().err


def test_jsonl_values_are_checked_against_the_var_defaults(project, write_pipeline, capsys):
    path = write_pipeline("name: j\nvars: {n: 1, ratio: 0.5, tags: [a]}\nsteps:\n  a: {model: wan2.6-t2i, prompt: x, params: {n: 1}}\n")
    rows = project / "rows.jsonl"
    rows.write_text('{"n": 2, "ratio": 1, "tags": ["b"]}\n{"n": true}\n{"tags": "b"}\n{"n": "3"}\n')
    assert main(["plan", str(path), "--batch", str(rows), "--json"]) == 1  # rejected rows
    plan = json.loads(capsys.readouterr().out)
    assert sorted(plan["instances"]) == ["row-1", "row-4"]  # an integer is fine for a number; text is parsed as CSV text is
    problems = {row["row"]: row["problems"][0] for row in plan["rejected"]}
    assert problems == {"rows.jsonl:2": "var 'n' is an integer; got a boolean (True)",
                        "rows.jsonl:3": "var 'tags' is a list; got 'b'"}


def test_plan_exits_2_when_every_row_is_rejected(project, write_pipeline, capsys):
    path = write_pipeline("name: r\nvars: {n: 1}\nsteps:\n  a: {model: wan2.6-t2i, prompt: x, params: {n: 1}}\n")
    rows = project / "rows.csv"
    rows.write_text("n\nx\ny\n")
    assert main(["plan", str(path), "--batch", str(rows)]) == 2
    err = capsys.readouterr().err
    assert f"{rows}:2:1: var 'n' is an integer; got 'x'" in err and f"{rows}:3:1:" in err
    assert "no row of the batch file can run" in err


# --- a --var on a matrix axis picks that axis value ------------------------------------------------

MATRIX = """
name: mx
vars: {style: a, light: x}
matrix: {style: [a, b, neon noir], light: [x, y]}
steps:
  hero: {model: wan2.6-t2i, prompt: "{{ vars.style }} {{ vars.light }}", params: {n: 1}}
"""


def test_a_var_naming_a_matrix_axis_selects_that_value(write_pipeline, capsys):
    path = write_pipeline(MATRIX)
    assert main(["plan", str(path), "--var", "style=neon noir", "--json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["instances"]) == ["style-neon-noir_light-x", "style-neon-noir_light-y"]
    assert main(["plan", str(path), "--var", "style=b", "--var", "light=y", "--json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["instances"]) == ["style-b_light-y"]


def test_a_var_with_a_value_the_axis_does_not_have_is_an_error(write_pipeline, capsys):
    path = write_pipeline(MATRIX)
    assert main(["validate", str(path), "--var", "style=z"]) == 2
    err = capsys.readouterr().err
    assert "--var style: style='z' is not a value of the matrix axis 'style'" in err
    assert "allowed: a, b, neon noir" in err


def test_a_batch_column_naming_a_matrix_axis_selects_per_row(project, write_pipeline, capsys):
    path = write_pipeline(MATRIX)
    rows = project / "rows.csv"
    rows.write_text("name,style\nfirst,b\nsecond,zz\n")
    assert main(["plan", str(path), "--batch", str(rows), "--json"]) == 1  # a rejected row
    plan = json.loads(capsys.readouterr().out)
    assert sorted(plan["instances"]) == ["first__style-b_light-x", "first__style-b_light-y"]
    assert "style='zz' is not a value of the matrix axis 'style'" in plan["rejected"][0]["problems"][0]


def test_matrix_values_that_clean_to_one_folder_name_are_refused(write_pipeline, capsys):
    path = write_pipeline("name: mc\nvars: {style: a}\nmatrix: {style: ['neon noir', 'neon-noir']}\n"
                          "steps:\n  hero: {model: wan2.6-t2i, prompt: '{{ vars.style }}', params: {n: 1}}\n")
    assert main(["plan", str(path)]) == 2
    assert "two matrix combinations get the same folder name 'style-neon-noir'" in capsys.readouterr().err
