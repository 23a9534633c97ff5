"""The chat models' settings of the engine client they build: how a message history meets the server's chat
template (``history``) and whether tool calls leaked into the answer's text are recovered
(``recover_tool_calls``). What each does is the engine layer's (``engine_clients/_history_policy.py``,
``engine_clients/dialects/toolcall_recovery.py``); here they are only fields passed on."""

from __future__ import annotations

from typing import Any

from engine_clients import BaseClient
from engine_clients._wrapper_support import HistoryPolicy
from engine_clients._wrapper_support import chat_client_options

from ._base import EngineModelMixin

__all__ = ["ChatClientOptions"]


class ChatClientOptions(EngineModelMixin):
    """``history`` and ``recover_tool_calls`` (with ``client=``, the given client's own settings apply)."""

    history: HistoryPolicy | None = None
    """How the history meets a strict chat template: None or ``"auto"`` (sent as given; when the server's
    template refuses it, fitted and sent once more, and fitted from then on), ``"fit"`` (always fitted to
    the strict rules), ``"mistral"`` (strict plus 9-character tool-call ids), ``"keep"`` (never changed: a
    template's refusal raises ``ChatTemplateError``) or an ``engine_clients.dialects.history.TemplateRules``.
    Per call: ``invoke(..., history="fit")`` or ``bind(history="fit")``. What was changed is listed in
    ``response_metadata["history_changes"]``."""
    recover_tool_calls: bool | None = None
    """None or True: with tools bound, turn tool-call markup the server's tool parser left in the text
    (``<tool_call>``, ``[TOOL_CALLS]``, ...) into tool calls (listed in
    ``response_metadata["recovered_tool_calls"]``). False leaves the text as the server sent it."""

    def _client_kwargs(self) -> dict[str, Any]:
        # None defaults keep LangChain's serialized kwargs as they were (it saves every truthy field)
        return {**super()._client_kwargs(), "history": self.history or "auto"}

    def _client_key(self) -> tuple[Any, ...]:
        return (*super()._client_key(), self.history, self.recover_tool_calls)

    def _configure_client(self, client: BaseClient) -> BaseClient:
        return chat_client_options(client, self.recover_tool_calls is not False)
