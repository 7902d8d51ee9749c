"""`rehearse` and `python -m rehearsal`: a Ctrl-C while the harness is still loading is a
plain "interrupted", not a traceback (importing pydantic models takes a moment)."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from rehearsal.cli import main as cli_main
    except KeyboardInterrupt:
        print("rehearse: interrupted", file=sys.stderr)
        return 2
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
