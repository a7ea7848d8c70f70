"""``wanflow models``: the model catalog, one model in full, as Markdown or as JSON."""

from __future__ import annotations

import argparse
import sys

from wanflow._exceptions import UsageError
from wanflow.cli.exit_codes import EXIT_OK
from wanflow.cli.values import print_json


def dispatch(args: argparse.Namespace) -> int:
    from wanflow.catalog import docs
    from wanflow.catalog.loader import load_catalog

    catalog = load_catalog()
    if args.model:
        model = catalog.get(args.model)
        if model is None:
            raise UsageError(f"unknown model '{args.model}' (known: {', '.join(catalog.names())})")
        sys.stdout.write(docs.model_markdown(model, catalog))
    elif args.markdown:
        sys.stdout.write(docs.models_markdown())
    elif args.json:
        print_json(docs.models_json())
    else:
        sys.stdout.write(docs.models_summary())
    return EXIT_OK
