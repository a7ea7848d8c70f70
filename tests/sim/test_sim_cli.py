"""Every simulator knob is a `wanflow sim` flag, mapped onto the Knobs the server runs with."""

from __future__ import annotations

import dataclasses

import pytest

import wanflow.sim.server
from wanflow.cli.main import main
from wanflow.sim.state import Knobs


@pytest.fixture
def served(monkeypatch):
    """Capture the knobs `wanflow sim` would serve with, instead of serving."""
    captured: list[Knobs] = []
    monkeypatch.setattr(wanflow.sim.server, "serve", lambda host, port, knobs, workdir=None: captured.append(knobs))
    return captured


def test_defaults_are_the_documents(served):
    assert main(["sim"]) == 0
    assert served == [Knobs()]
    knobs = served[0]
    assert (knobs.vtrix_dialect, knobs.status_words, knobs.error_shape) == ("documented", "documented", "object")
    assert knobs.list_clock_offset == "+00:00" and knobs.upload_ttl == 48 * 3600
    assert not knobs.status_in_output and not knobs.ignore_params
    assert knobs.suspend_rate == 0 and knobs.poll_throttle_rps == 0


def test_every_new_flag_reaches_its_knob(served):
    argv = ["sim", "--vtrix-dialect", "gateway", "--status-words", "mixed", "--status-in-output",
            "--error-shape", "message-only", "--suspend-rate", "0.25", "--list-clock-offset", "+08:00",
            "--upload-ttl", "60", "--ignore-params", "--poll-throttle-rps", "3"]
    assert main(argv) == 0
    changed = {name: value for name, value in dataclasses.asdict(served[0]).items()
               if value != getattr(Knobs(), name)}
    assert changed == {"vtrix_dialect": "gateway", "status_words": "mixed", "status_in_output": True,
                       "error_shape": "message-only", "suspend_rate": 0.25, "list_clock_offset": "+08:00",
                       "upload_ttl": 60.0, "ignore_params": True, "poll_throttle_rps": 3.0}


@pytest.mark.parametrize("argv", [["--list-clock-offset", "8"], ["--list-clock-offset", "+8:00"],
                                  ["--suspend-rate", "1.5"], ["--status-words", "random"], ["--error-shape", "xml"],
                                  ["--after-create-answer", "502"], ["--list-format", "xml"],
                                  ["--fresh-unknown-polls", "-1"], ["--lose-rate", "2"],
                                  ["--list-max-span-hours", "0"], ["--port", "99999"], ["--port", "-1"],
                                  ["--task-seconds", "-1"], ["--task-seconds", "nan"], ["--throttle-rps", "inf"],
                                  ["--partial-failures", "-2"]])
def test_bad_values_are_usage_errors(served, argv, capsys):
    assert main(["sim", *argv]) == 2
    assert served == []
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err and "internal error" not in err


def test_a_taken_port_is_a_plain_error(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["sim", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_every_money_on_the_wire_flag_reaches_its_knob(served):
    argv = ["sim", "--lose-rate", "0.1", "--after-create-rate", "0.2", "--after-create-answer", "504-html",
            "--fresh-unknown-polls", "3", "--create-answer", "top-level", "--list-format", "documented",
            "--list-account-wide", "--list-max-span-hours", "12", "--list-lag", "5", "--partial-failures", "1",
            "--empty-success-rate", "0.3"]
    assert main(argv) == 0
    changed = {name: value for name, value in dataclasses.asdict(served[0]).items()
               if value != getattr(Knobs(), name)}
    assert changed == {"lose_rate": 0.1, "after_create_rate": 0.2, "after_create_answer": "504-html",
                       "fresh_unknown_polls": 3, "create_answer": "top-level", "list_format": "documented",
                       "list_account_wide": True, "list_max_span_hours": 12.0, "list_lag_seconds": 5.0,
                       "partial_failures": 1, "empty_success_rate": 0.3}



def test_the_input_fields_flag_reaches_its_knob_and_refuses_other_values(served, capsys):
    assert main(["sim", "--input-fields", "aliases"]) == 0
    changed = {name: value for name, value in dataclasses.asdict(served[0]).items()
               if value != getattr(Knobs(), name)}
    assert changed == {"input_fields": "aliases"}
    assert main(["sim", "--input-fields", "both"]) != 0 and len(served) == 1
    assert "error" in capsys.readouterr().err
