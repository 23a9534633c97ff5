"""Typed sync/async clients for self-hosted LLM inference servers: Hugging Face TGI, vLLM and llama.cpp.

>>> from engine_clients import LlamaCppClient
>>> with LlamaCppClient("http://127.0.0.1:8080") as client:
...     print(client.chat([{"role": "user", "content": "Hi"}], max_tokens=16).content)
"""

from ._clients import BaseClient, LlamaCppClient, TGIClient, VLLMClient
from ._detect import EngineDetectionError, aconnect, adetect_engine, connect, detect_engine
from ._pool import EnginePool, Percentiles, PoolExhaustedError, PoolStats, ReplicaStats
from ._transport import Timeouts
from .errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    EngineError,
    EngineUnavailableError,
    InternalServerError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StreamError,
    StreamTimeoutError,
    TimeoutError,
)
from .types import (
    ChatMessage,
    Completion,
    End,
    EngineInfo,
    FinishReason,
    Grammar,
    HealthStatus,
    JsonObject,
    JsonSchema,
    Regex,
    Started,
    StreamEvent,
    Token,
    TokenInfo,
    TokenLogprob,
    Tool,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BaseClient",
    "ChatMessage",
    "Completion",
    "ContextWindowExceededError",
    "End",
    "EngineDetectionError",
    "EngineError",
    "EngineInfo",
    "EnginePool",
    "EngineUnavailableError",
    "FinishReason",
    "Grammar",
    "HealthStatus",
    "InternalServerError",
    "InvalidRequestError",
    "JsonObject",
    "JsonSchema",
    "LlamaCppClient",
    "MalformedResponseError",
    "NotFoundError",
    "Percentiles",
    "PermissionDeniedError",
    "PoolExhaustedError",
    "PoolStats",
    "RateLimitError",
    "Regex",
    "ReplicaStats",
    "Started",
    "StreamError",
    "StreamEvent",
    "StreamTimeoutError",
    "TGIClient",
    "TimeoutError",
    "Timeouts",
    "Token",
    "TokenInfo",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "TopLogprob",
    "Usage",
    "VLLMClient",
    "aconnect",
    "adetect_engine",
    "connect",
    "detect_engine",
]
