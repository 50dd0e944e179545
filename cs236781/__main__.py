"""``python -m cs236781 COMMAND ...``: the course tools (see :mod:`cs236781.cli`)."""
import sys

from cs236781.cli import main

if __name__ == "__main__":
    sys.exit(main())
