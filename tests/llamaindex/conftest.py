"""Fixtures for the LlamaIndex integration tests: instrumentation collectors and the conformance backends.

``llama_server``/``vllm_server`` are the session fixtures of ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler

from tests.llamaindex.conformance import EventCollector


@pytest.fixture
def events() -> Iterator[list[BaseEvent]]:
    """Every instrumentation event dispatched during the test."""
    root = get_dispatcher()
    collector = EventCollector(events=[])
    root.add_event_handler(collector)
    try:
        yield collector.events
    finally:
        root.event_handlers.remove(collector)


@pytest.fixture
def spans() -> Iterator[SimpleSpanHandler]:
    """Instrumentation spans opened during the test (``completed_spans``)."""
    root = get_dispatcher()
    handler = SimpleSpanHandler()
    root.add_span_handler(handler)
    try:
        yield handler
    finally:
        root.span_handlers.remove(handler)
