"""``wanflow sim``: serve the local simulator of the vtrix and DashScope APIs."""

from __future__ import annotations

import argparse

from wanflow._exceptions import UsageError
from wanflow.cli.exit_codes import EXIT_OK


def dispatch(args: argparse.Namespace) -> int:
    try:
        from wanflow.sim.server import serve
        from wanflow.sim.state import Knobs
    except ModuleNotFoundError as error:  # the simulator's web stack is not part of the lean install
        raise UsageError(f"wanflow sim needs {error.name}, which the default install leaves out; install it with "
                         "`pip install starlette uvicorn` (or wanflow's test extra: pip install -e '.[test]')") from None

    for name in ("error_rate", "fail_rate", "drop_rate", "suspend_rate", "corrupt_rate", "short_rate", "reset_rate",
                 "after_create_rate", "empty_success_rate", "lose_rate"):
        if not 0 <= getattr(args, name) <= 1:
            raise UsageError(f"--{name.replace('_', '-')} must be between 0 and 1")
    try:
        knobs = Knobs(
            task_seconds=args.task_seconds,
            error_rate=args.error_rate,
            throttle_rps=args.throttle_rps,
            fail_rate=args.fail_rate,
            drop_rate=args.drop_rate,
            corrupt_rate=args.corrupt_rate,
            short_rate=args.short_rate,
            reset_rate=args.reset_rate,
            url_ttl=args.url_ttl,
            keys=tuple(args.key or ["sim-key"]),
            seed=args.seed,
            moderate=args.moderate,
            tiny_results=args.tiny_results,
            vtrix_dialect=args.vtrix_dialect,
            status_words=args.status_words,
            status_in_output=args.status_in_output,
            error_shape=args.error_shape,
            suspend_rate=args.suspend_rate,
            list_clock_offset=args.list_clock_offset,
            upload_ttl=args.upload_ttl,
            ignore_params=args.ignore_params,
            face_check_fails=args.face_check_fails,
            input_fields=args.input_fields,
            poll_throttle_rps=args.poll_throttle_rps,
            lose_rate=args.lose_rate,
            after_create_rate=args.after_create_rate,
            after_create_answer=args.after_create_answer,
            fresh_unknown_polls=args.fresh_unknown_polls,
            create_answer=args.create_answer,
            list_format=args.list_format,
            list_account_wide=args.list_account_wide,
            list_max_span_hours=args.list_max_span_hours,
            list_lag_seconds=args.list_lag,
            partial_failures=args.partial_failures,
            empty_success_rate=args.empty_success_rate,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        serve(args.host, args.port, knobs)
    except OSError as error:  # the port is taken, or the address is not this machine's
        raise UsageError(f"sim: cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None
    return EXIT_OK
