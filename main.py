"""The course's tooling entry point: ``python main.py COMMAND ...``.

The same command line as ``python -m cs236781`` (one implementation, :mod:`cs236781.cli`):
``run-nb``, ``prepare-submission``, ``prepare-dist``, ``clear-nb`` and ``grade``; ``python main.py --help``
lists them and ``python main.py COMMAND --help`` their flags.
"""
import sys

from cs236781.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="main.py"))
