"""Typed sync/async clients for self-hosted LLM inference servers: Hugging Face TGI, vLLM and llama.cpp.

>>> from engine_clients import LlamaCppClient
>>> with LlamaCppClient("http://127.0.0.1:8080") as client:
...     print(client.chat([{"role": "user", "content": "Hi"}], max_tokens=16).content)
"""

from ._affinity import SessionAffinity
from ._clients import BaseClient
from ._clients import LlamaCppClient
from ._clients import SGLangClient
from ._clients import TEIClient
from ._clients import TGIClient
from ._clients import VLLMClient
from ._detect import PROBE_TIMEOUT
from ._detect import EngineDetectionAuthError
from ._detect import EngineDetectionError
from ._detect import aconnect
from ._detect import adetect_engine
from ._detect import client_class
from ._detect import connect
from ._detect import detect_engine
from ._model_types import AdapterInfo
from ._model_types import ModelInfo
from ._model_types import ModelState
from ._pool import EnginePool
from ._pool import Percentiles
from ._pool import PoolExhaustedError
from ._pool import PoolStats
from ._pool import ReplicaStats
from ._transport import Timeouts
from .dialects.reasoning import ThinkSplitter
from .dialects.reasoning import ThinkTags
from .dialects.reasoning import split_reasoning
from .errors import AdapterNotFoundError
from .errors import AuthenticationError
from .errors import BadRequestError
from .errors import ChatTemplateError
from .errors import ContextWindowExceededError
from .errors import EngineError
from .errors import EngineUnavailableError
from .errors import InternalServerError
from .errors import InvalidRequestError
from .errors import MalformedResponseError
from .errors import MediaTooLargeError
from .errors import ModelLoadingError
from .errors import ModelRequiredError
from .errors import NotFoundError
from .errors import PermissionDeniedError
from .errors import RateLimitError
from .errors import StreamError
from .errors import StreamTimeoutError
from .errors import StructuredOutputError
from .errors import TimeoutError
from .errors import UnsupportedInputError
from .errors import UpstreamUnreachableError
from .types import ChatMessage
from .types import Completion
from .types import Embeddings
from .types import End
from .types import EngineInfo
from .types import FinishReason
from .types import Grammar
from .types import HealthStatus
from .types import JsonObject
from .types import JsonSchema
from .types import Reasoning
from .types import RecoveredCall
from .types import Regex
from .types import Reranking
from .types import RerankResult
from .types import Started
from .types import StreamEvent
from .types import Timings
from .types import Token
from .types import TokenInfo
from .types import TokenLogprob
from .types import Tool
from .types import ToolCall
from .types import ToolCallDelta
from .types import TopLogprob
from .types import Usage

__version__ = "0.1.0"

__all__ = [
    "PROBE_TIMEOUT",
    "AdapterInfo",
    "AdapterNotFoundError",
    "AuthenticationError",
    "BadRequestError",
    "BaseClient",
    "ChatMessage",
    "ChatTemplateError",
    "Completion",
    "ContextWindowExceededError",
    "Embeddings",
    "End",
    "EngineDetectionAuthError",
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
    "MediaTooLargeError",
    "ModelInfo",
    "ModelLoadingError",
    "ModelRequiredError",
    "ModelState",
    "NotFoundError",
    "Percentiles",
    "PermissionDeniedError",
    "PoolExhaustedError",
    "PoolStats",
    "RateLimitError",
    "Reasoning",
    "RecoveredCall",
    "Regex",
    "ReplicaStats",
    "RerankResult",
    "Reranking",
    "SGLangClient",
    "SessionAffinity",
    "Started",
    "StreamError",
    "StreamEvent",
    "StreamTimeoutError",
    "StructuredOutputError",
    "TEIClient",
    "TGIClient",
    "ThinkSplitter",
    "ThinkTags",
    "TimeoutError",
    "Timeouts",
    "Timings",
    "Token",
    "TokenInfo",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "TopLogprob",
    "UnsupportedInputError",
    "UpstreamUnreachableError",
    "Usage",
    "VLLMClient",
    "aconnect",
    "adetect_engine",
    "client_class",
    "connect",
    "detect_engine",
    "split_reasoning",
]
