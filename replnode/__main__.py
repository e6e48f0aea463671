"""`replnode` / `python -m replnode`: parse the command line, run the daemon."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from replnode.cli import parse_args
    from replnode.shell.runtime import main_with_options

    options = parse_args(argv)
    return main_with_options(options)


if __name__ == "__main__":
    sys.exit(main())
