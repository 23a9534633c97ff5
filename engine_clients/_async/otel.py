"""A stream inside an OpenTelemetry span (the span itself, and everything non-streamed, is in ``_otel``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Callable

from .._otel import Call
from ..types import End
from ..types import StreamEvent

__all__ = ["atraced"]


async def atraced(
    start: Callable[[], Call | None], events: AsyncIterator[StreamEvent]
) -> AsyncIterator[StreamEvent]:
    """``events`` in a span started at the first read, ended at End, at the error, or when the consumer
    closes the stream."""
    call = start()
    if call is None:
        async for event in events:
            yield event
        return
    ended = False
    try:
        async for event in events:
            if type(event) is End:
                ended = True
                call.done(event.completion)
            yield event
    except GeneratorExit:
        raise
    except BaseException as exc:
        if not ended:
            ended = True
            call.fail(exc)
        raise
    finally:
        if not ended:
            call.closed()
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
