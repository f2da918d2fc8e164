"""``python -m seadeploy <stage> ...`` — same as the ``seadeploy`` console script."""

import sys

from seadeploy.cli import entry_point

if __name__ == "__main__":
    sys.exit(entry_point())
