"""``python -m wanflow``."""

import sys

from wanflow.cli.main import main

sys.exit(main())
