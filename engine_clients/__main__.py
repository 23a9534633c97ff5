"""``python -m engine_clients``: the ``engine-clients`` command (``demo``, ``doctor``, ``serve``,
``loadtest``); see ``engine_clients/_cli``."""

from __future__ import annotations

import sys

from ._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
