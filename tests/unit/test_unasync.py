"""The sync half of the I/O code is generated from the async half (scripts/unasync.py) and committed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _unasync() -> object:
    spec = importlib.util.spec_from_file_location("unasync", ROOT / "scripts" / "unasync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["unasync"] = module
    spec.loader.exec_module(module)
    return module


def test_committed_sync_code_is_what_the_generator_makes() -> None:
    unasync = _unasync()
    for path, text in unasync.expected().items():  # type: ignore[attr-defined]
        assert path.read_text() == text, f"{path} is stale: run python scripts/unasync.py"


def test_rewrite_rules() -> None:
    unasync = _unasync()
    src = (
        "async def achat(self) -> AsyncIterator[X]:\n"
        "    async for e in self.async_transport.stream():\n"
        "        await self._acomplete(await f())\n"
        "    await getattr(events, 'aclose')()\n"
    )
    assert unasync.unasync(src) == (  # type: ignore[attr-defined]
        "def chat(self) -> Iterator[X]:\n"
        "    for e in self.sync_transport.stream():\n"
        "        self._complete(f())\n"
        "    getattr(events, 'close')()\n"
    )
