"""``python -m agentstream`` and the ``agentstream`` console script: ``run``, ``models``, ``demo``."""
from __future__ import annotations

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 error, 2 usage, 130 Ctrl-C)."""
    from ._cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
