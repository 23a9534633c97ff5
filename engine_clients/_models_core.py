"""The pure part of ``adapter=`` on a client: the adapters read from the server, cached, and the choice.

Where a dialect spells an adapter by a server-side id (llama.cpp: ``"lora": [{"id", "scale"}]``), the client
reads the server's adapters once per base model (``GET /lora-adapters``, in ``_async/models.py``) and keeps
them here; each request then carries them in its :class:`AdapterChoice`, and the dialect refuses an unknown
name before sending. The I/O (listing, loading, unloading models and adapters) is in ``_async/models.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._model_types import AdapterInfo
from ._requests import AdapterChoice

if TYPE_CHECKING:
    from .dialects import OpenAICompatDialect

__all__ = ["ModelsCore"]


class ModelsCore:
    """Adapter tables per base model (None: the client's model), filled on first need."""

    dialect: OpenAICompatDialect
    model: str | None
    _adapter_tables: dict[str | None, tuple[AdapterInfo, ...]] | None = None

    def _adapter_choice(
        self, adapter: str | None, scale: float | None, model: str | None
    ) -> AdapterChoice | None:
        """``adapter=``/``adapter_scale=`` of one request, with the server's adapters when known."""
        if adapter is None:
            if scale is not None:
                raise_scale_without_adapter(self.dialect.engine)
            return None
        known = (self._adapter_tables or {}).get(model or self.model)
        return AdapterChoice(adapter, scale, known)

    def _adapters_unread(self, adapter: str | None, model: str | None) -> bool:
        """Whether a request for ``adapter`` needs the server's adapter list read first."""
        return (
            adapter is not None
            and self.dialect.adapter_table_needed
            and (model or self.model) not in (self._adapter_tables or {})
        )

    def _remember_adapters(self, model: str | None, adapters: list[AdapterInfo]) -> None:
        tables = dict(self._adapter_tables or {})  # a new dict: instances never share the class default
        tables[model or self.model] = tuple(adapters)
        self._adapter_tables = tables

    def _forget_adapters(self) -> None:
        """After an adapter is loaded or unloaded: read the list again on the next request that needs it."""
        self._adapter_tables = None


def raise_scale_without_adapter(engine: str) -> None:
    from .errors import InvalidRequestError

    raise InvalidRequestError("adapter_scale needs adapter= (the adapter it scales)", engine=engine)
