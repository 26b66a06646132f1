"""`python -m sd_reimagine`: the standalone CLI."""

import sys

from .standalone.cli import main

if __name__ == "__main__":
    sys.exit(main())
