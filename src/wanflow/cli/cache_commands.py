"""``wanflow cache verify`` and ``wanflow cache gc``: check or clean the artifact store and step cache."""

from __future__ import annotations

import argparse
from typing import Any

from wanflow._exceptions import UsageError
from wanflow.cli.exit_codes import EXIT_OK, EXIT_STEP_FAILED
from wanflow.cli.values import print_json


def dispatch(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from wanflow.records import maintenance
    from wanflow.state.workspace import Workspace

    workspace = Workspace.discover(state_dir=args.state_dir)
    if workspace.state_dir.exists() and not workspace.state_dir.is_dir():
        raise UsageError(f"the state folder {workspace.state_dir} is a file, not a folder; choose another with --state-dir")
    if args.action == "verify":
        report = maintenance.verify(workspace)
        if args.json:
            print_json({**asdict(report), "ok": report.ok})
        else:
            print(f"checked {report.objects_checked} objects and {report.entries_checked} cache entries in {workspace.state_dir}")
            for name in report.corrupt:
                print(f"  corrupt object {name}: moved to quarantine; the steps needing it will run again")
            for key in report.entries_missing_objects:
                print(f"  cache entry {key[:16]} lost an object: its step will run again")
            for run_id in report.abandoned:
                print(f"  run {run_id} was left running by a process that died: marked abandoned")
            if report.shared_store is not None:
                print(f"checked {report.shared_objects_checked} objects and {report.shared_entries_checked} cache entries "
                      f"in the shared store {report.shared_store}")
            for name in report.shared_corrupt:
                print(f"  corrupt shared object {name}: moved to the store's quarantine/; the steps needing it will run again")
            for key in report.shared_entries_missing_objects:
                print(f"  shared cache entry {key[:16]} lost an object: its step will run again")
            print("ok" if report.ok else "problems found (nothing corrupt will be served)")
        return EXIT_OK if report.ok else EXIT_STEP_FAILED
    gc = maintenance.collect_garbage(workspace, keep_days=args.keep_days, dry_run=args.dry_run)
    if args.json:
        print_json(asdict(gc))
        return EXIT_OK
    print(f"policy: {gc.policy}")
    _print_sweep(gc, "", gc.dry_run)
    if gc.shared is not None:
        if gc.shared.skipped:
            print(f"shared store {gc.shared.store}: nothing removed, because {gc.shared.skipped}")
        _print_sweep(gc.shared, "shared ", gc.dry_run, f"shared store {gc.shared.store}: ")
    return EXIT_OK


def _print_sweep(sweep: Any, label: str, dry_run: bool, heading: str = "") -> None:
    """One store's lines of ``cache gc`` (the workspace's, or the shared store's with ``label``)."""
    if not getattr(sweep, "skipped", None):
        print(f"{heading}{'would remove' if dry_run else 'removed'} {len(sweep.removed_entries)} cache entries and "
              f"{len(sweep.removed_objects)} objects ({sweep.freed_bytes / 1048576:.1f} MB); "
              f"kept {sweep.kept_entries} entries and {sweep.kept_objects} objects")
    for problem in sweep.damaged:
        print(f"  kept because of a damaged state file: {problem}")
    if dry_run:
        for key in sweep.removed_entries:
            print(f"  {label}entry  {key}")
        for name in sweep.removed_objects:
            print(f"  {label}object {name}")
