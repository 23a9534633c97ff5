"""``engine-clients doctor``: what works against a server, and what to change where it does not
(``core.py``: the report and the run; ``chat.py``, ``checks.py``: the checks)."""

from .core import Check
from .core import Report
from .core import Status
from .core import diagnose
from .core import targets

__all__ = ["Check", "Report", "Status", "diagnose", "targets"]
