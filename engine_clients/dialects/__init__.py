"""Pure codecs, one per engine: request building and response/event/error parsing, no I/O."""

from .base import Dialect
from .base import HttpRequest
from .base import StreamDecoder
from .llamacpp import LlamaCppDialect
from .openai_compat import OpenAICompatDialect
from .sglang import SGLangDialect
from .tei import TEIDialect
from .tgi import TGIDialect
from .vllm import VLLMDialect

__all__ = [
    "Dialect",
    "HttpRequest",
    "LlamaCppDialect",
    "OpenAICompatDialect",
    "SGLangDialect",
    "StreamDecoder",
    "TEIDialect",
    "TGIDialect",
    "VLLMDialect",
]
