"""Engine errors as LangChain errors.

Every error the LangChain models raise is an ``engine_clients`` error that *also* inherits from the
matching ``langchain_core.exceptions`` type, so code written against either package catches it::

    from langchain_core.exceptions import ContextOverflowError
    from engine_clients import ContextWindowExceededError

    try:
        llm.invoke(very_long_prompt)
    except ContextOverflowError as exc:  # or: except ContextWindowExceededError
        print(exc.prompt_tokens, exc.context_limit)

LangChain's retry and fallback helpers read ``is_retryable`` (true for rate limits, timeouts, connection
and server errors), and middleware such as summarization looks for ``ContextOverflowError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from langchain_core.exceptions import ContextOverflowError
from langchain_core.exceptions import ModelAPIError
from langchain_core.exceptions import ModelAuthenticationError
from langchain_core.exceptions import ModelConnectionError
from langchain_core.exceptions import ModelError
from langchain_core.exceptions import ModelInvalidRequestError
from langchain_core.exceptions import ModelNotFoundError
from langchain_core.exceptions import ModelPermissionDeniedError
from langchain_core.exceptions import ModelRateLimitError
from langchain_core.exceptions import ModelTimeoutError
from langchain_core.exceptions import OutputParserException

import engine_clients.errors as ec

# a twin of every engine_clients error (tests/langchain/test_error_twins.py holds them to it)
__all__ = [*ec.__all__, "to_langchain_error", "translate_errors"]


class EngineError(ec.EngineError, ModelError):
    """Any engine failure without a more specific type."""


class InvalidRequestError(ec.InvalidRequestError, ModelInvalidRequestError):
    """Refused before sending (unsupported parameter or format for this engine). Also a ``ValueError``."""


class BadRequestError(ec.BadRequestError, ModelInvalidRequestError):
    """The engine refused the request (HTTP 400/422)."""


class UnsupportedInputError(ec.UnsupportedInputError, ModelInvalidRequestError):
    """The server cannot take this input kind (``kind``: image, audio); the message says the fix."""


class MediaTooLargeError(ec.MediaTooLargeError, ModelInvalidRequestError):
    """An image or audio item is over the client's ``max_media_bytes``; nothing was sent."""


class ChatTemplateError(ec.ChatTemplateError, ModelInvalidRequestError):
    """The chat template refused the messages; ``rule``, ``index`` and ``fix`` say why and what to do."""


class StructuredOutputError(ec.StructuredOutputError, ModelError, OutputParserException):
    """JSON was asked for, but the answer is empty and its reasoning ends with no JSON that fits; ``content``
    and ``reasoning`` hold both texts. Also an ``OutputParserException``, as a parser given the empty answer
    would have raised (``with_structured_output``)."""

    observation: str | None = None  # OutputParserException's fields (its __init__ is not run here)
    llm_output: str | None = None
    send_to_llm = False


class ContextWindowExceededError(ec.ContextWindowExceededError, ContextOverflowError):
    """The prompt (plus requested output) does not fit the context window."""


class AuthenticationError(ec.AuthenticationError, ModelAuthenticationError):
    """Missing or wrong API key (HTTP 401)."""


class PermissionDeniedError(ec.PermissionDeniedError, ModelPermissionDeniedError):
    """The key is not allowed (HTTP 403)."""


class NotFoundError(ec.NotFoundError, ModelNotFoundError):
    """Route or model not found (HTTP 404)."""


class AdapterNotFoundError(ec.AdapterNotFoundError, ModelNotFoundError):
    """The server has no LoRA adapter of that name (``adapter``; ``available``: the ones it has)."""


class ModelRequiredError(ec.ModelRequiredError, ModelInvalidRequestError):
    """The server hosts several models (a router-mode llama-server): pass ``model=`` (``models``)."""


class RateLimitError(ec.RateLimitError, ModelRateLimitError):
    """Overloaded or rate limited (HTTP 429); retryable."""


class InternalServerError(ec.InternalServerError, ModelAPIError):
    """The engine failed while handling the request (HTTP 5xx); retryable."""


class EngineUnavailableError(ec.EngineUnavailableError, ModelConnectionError):
    """Nothing answered, or the engine is loading (502/503/504); retryable."""


class ModelLoadingError(ec.ModelLoadingError, ModelConnectionError):
    """The server was still loading or switching its model after ``Timeouts.load`` seconds of waiting."""


class UpstreamUnreachableError(ec.UpstreamUnreachableError, ModelAPIError):
    """A router in front of the engines could not reach the one it picked; retryable."""


class MalformedResponseError(ec.MalformedResponseError, ModelAPIError):
    """The engine answered something unreadable."""


class TimeoutError(ec.TimeoutError, ModelTimeoutError):
    """A time limit was reached; retryable. Also a builtin ``TimeoutError``."""


class StreamError(ec.StreamError, ModelAPIError):
    """A stream broke after output began; ``partial_text``/``partial_tool_calls`` hold what arrived."""


class StreamTimeoutError(ec.StreamTimeoutError, ModelTimeoutError):
    """No stream chunk arrived within the inter-chunk timeout."""


# Most specific engine class first: lookup walks the raised error's MRO.
_MAP: dict[type[ec.EngineError], type[ec.EngineError]] = {
    ec.StreamTimeoutError: StreamTimeoutError,
    ec.StreamError: StreamError,
    ec.ModelLoadingError: ModelLoadingError,
    ec.UpstreamUnreachableError: UpstreamUnreachableError,
    ec.ContextWindowExceededError: ContextWindowExceededError,
    ec.ChatTemplateError: ChatTemplateError,
    ec.StructuredOutputError: StructuredOutputError,
    ec.UnsupportedInputError: UnsupportedInputError,
    ec.MediaTooLargeError: MediaTooLargeError,
    ec.ModelRequiredError: ModelRequiredError,
    ec.BadRequestError: BadRequestError,
    ec.InvalidRequestError: InvalidRequestError,
    ec.PermissionDeniedError: PermissionDeniedError,
    ec.AuthenticationError: AuthenticationError,
    ec.AdapterNotFoundError: AdapterNotFoundError,
    ec.NotFoundError: NotFoundError,
    ec.RateLimitError: RateLimitError,
    ec.InternalServerError: InternalServerError,
    ec.EngineUnavailableError: EngineUnavailableError,
    ec.MalformedResponseError: MalformedResponseError,
    ec.TimeoutError: TimeoutError,
    ec.EngineError: EngineError,
}
_CONVERTED = frozenset(_MAP.values())


def to_langchain_error(err: ec.EngineError) -> ec.EngineError:
    """The same error (message, attributes, cause, traceback) as the class that is also a LangChain error."""
    if type(err) in _CONVERTED:
        return err
    target = next((_MAP[c] for c in type(err).__mro__ if c in _MAP), EngineError)
    new = target.__new__(target)
    Exception.__init__(new, *err.args)
    new.__dict__.update(err.__dict__)  # status_code, engine, body, partial_text, prompt_tokens, ...
    new.__cause__ = err.__cause__
    new.__context__ = err.__context__
    new.__suppress_context__ = err.__suppress_context__
    return new.with_traceback(err.__traceback__)


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise engine errors as their LangChain-compatible subclasses (also around generator bodies)."""
    try:
        yield
    except ec.EngineError as err:
        converted = to_langchain_error(err)
        if converted is err:
            raise
        raise converted from err.__cause__
