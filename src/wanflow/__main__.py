"""``python -m wanflow``."""

from wanflow.cli.entry import console

console()
