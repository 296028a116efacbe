"""``python -m vlmsim --help``."""

import sys

from vlmsim.cli import main

sys.exit(main())
