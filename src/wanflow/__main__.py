"""``python -m wanflow``."""

import sys

from wanflow.cli.entry import main

sys.exit(main())
