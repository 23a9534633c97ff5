"""The transport's public face: ``SyncTransport`` (generated) and ``AsyncTransport`` (the source), and the
shared policy from ``_http``."""

from ._async.transport import AsyncTransport
from ._http import MAX_RETRY_WAIT
from ._http import OnHeaders
from ._http import Timeouts
from ._http import parse_retry_after
from ._http import redact_url
from ._sync.transport import SyncTransport
from ._sync.transport import _drain

__all__ = [
    "MAX_RETRY_WAIT",
    "AsyncTransport",
    "OnHeaders",
    "SyncTransport",
    "Timeouts",
    "_drain",
    "parse_retry_after",
    "redact_url",
]
