"""``python -m backprop``: the command-line tool (see backprop.cli).

Without arguments it trains a small network on the digits data set that
ships with the package and prints its progress and test accuracy.
"""

import sys

from backprop.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m backprop"))
