"""``python -m benchmarks``: the whole suite; see ``python -m benchmarks --help``."""

import sys

from .run import main

sys.exit(main())
