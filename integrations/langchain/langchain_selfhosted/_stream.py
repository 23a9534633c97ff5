"""The stream loops of the chat models and the LLMs: engine ``StreamEvent``s in, LangChain chunks out.

Everything that happens per event is in :class:`ChunkStream`, once and without I/O; :func:`stream_chunks`
and :func:`astream_chunks` are only the sync and async shells around it. A shell opens the stream on the
model's client, asks the server for the model's name when the last event needs it (I/O: after the answer,
so that a request refused before sending costs no round trip), reports each chunk to the run manager, and
closes the stream however the loop ends (finished, failed, or stopped early by the consumer), which releases
its HTTP connection. Engine errors are raised as :mod:`langchain_selfhosted.errors` types.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from typing import Generic
from typing import TypeVar

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.outputs import GenerationChunk

from engine_clients import End
from engine_clients import StreamEvent
from engine_clients._wrapper_support import aclosing_events
from engine_clients._wrapper_support import closing_events

from ._client import EngineClient
from ._client import EngineClientMixin
from .errors import translate_errors

__all__ = ["ChunkStream", "astream_chunks", "stream_chunks"]

ChunkT = TypeVar("ChunkT", GenerationChunk, ChatGenerationChunk)
Converter = Callable[[StreamEvent, str | None], ChunkT | None]


class ChunkStream(Generic[ChunkT]):
    """The chunks one stream's events become.

    ``convert(event, model_name)`` gives an event's chunk (None: nothing to show); ``model_name`` is passed
    with the last event (``End``) only: the model the call named, else the one the server reports. The
    loops below call ``convert`` directly for every other event: it runs once per token.
    """

    def __init__(self, convert: Converter[ChunkT], model: str | None) -> None:
        self.convert: Converter[ChunkT] = convert
        self.model = model

    def end(self, event: End, discovered: str | None) -> ChunkT | None:
        """The last chunk; ``discovered``: the model's name from the server, asked for when the call named
        none (``model`` is None)."""
        return self.convert(event, self.model or discovered)


def stream_chunks(
    model: EngineClientMixin,
    open_events: Callable[[EngineClient], Iterator[StreamEvent]],
    chunks: ChunkStream[ChunkT],
    run_manager: CallbackManagerForLLMRun | None,
) -> Iterator[ChunkT]:
    """The stream ``open_events`` opens on ``model``'s client, as chunks (see the module docstring)."""
    convert = chunks.convert
    with translate_errors():
        events = open_events(model.client)
        with closing_events(events):
            for event in events:
                if isinstance(event, End):
                    chunk = chunks.end(event, None if chunks.model else model._ensure_model())
                else:
                    chunk = convert(event, None)
                if chunk is None:
                    continue
                if run_manager:  # langchain-core's stream() reports tokens itself and passes none
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk


async def astream_chunks(
    model: EngineClientMixin,
    open_events: Callable[[EngineClient], AsyncIterator[StreamEvent]],
    chunks: ChunkStream[ChunkT],
    run_manager: AsyncCallbackManagerForLLMRun | None,
) -> AsyncGenerator[ChunkT, None]:
    """:func:`stream_chunks` for async streams."""
    convert = chunks.convert
    with translate_errors():
        events = open_events(await model._aclient())
        async with aclosing_events(events):
            async for event in events:
                if isinstance(event, End):
                    chunk = chunks.end(event, None if chunks.model else await model._aensure_model())
                else:
                    chunk = convert(event, None)
                if chunk is None:
                    continue
                if run_manager:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
