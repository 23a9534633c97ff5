"""Tool calling for :class:`~llama_index.llms.selfhosted.EngineLLM` (``FunctionCallingLLM``'s hooks): tools
as OpenAI-style specs in the chat request, the tool choice, parallel calls where the engine takes them (a
single call is enforced on the response either way), and the calls read back out of a response."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.base.llms.types import MessageRole
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from engine_clients import client_class

from ._convert import keep_first_tool_call
from ._convert import tool_selections

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["PARALLEL_IF_TAKEN", "ToolCallingLLM", "takes_chat_param"]

#: ``allow_parallel_tool_calls`` carried from ``_prepare_chat_with_tools`` to the request when the engine (and
#: so whether it takes ``parallel_tool_calls``) is only known once the client exists (auto mode, pools).
PARALLEL_IF_TAKEN = "_parallel_tool_calls_if_taken"


def takes_chat_param(engine: str | None, name: str) -> bool:
    """Whether ``engine``'s chat route takes the request field ``name`` (False while it is unknown)."""
    return engine is not None and name in client_class(engine).dialect_class.chat_params


class ToolCallingLLM(FunctionCallingLLM):
    """The tool-calling part of ``EngineLLM`` (no fields of its own; a ``FunctionCallingLLM`` so that
    LlamaIndex instruments these methods, as it does the ones a subclass implements)."""

    if TYPE_CHECKING:  # declared on EngineLLM

        def _known_engine(self) -> str | None: ...

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Chat arguments with OpenAI-style tool specs. ``tool_choice`` (``"auto"``, ``"none"``,
        ``"required"``, a tool name or an OpenAI dict) wins over ``tool_required`` (= ``"required"``)."""
        specs = [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]
        messages = list(chat_history or [])  # never the caller's list
        if user_msg is not None:
            messages.append(
                ChatMessage(role=MessageRole.USER, content=user_msg)
                if isinstance(user_msg, str)
                else user_msg
            )
        out: dict[str, Any] = {"messages": messages, **kwargs}
        if specs:
            out["tools"] = specs
            out["tool_choice"] = tool_choice or ("required" if tool_required else "auto")
            # sent where the engine takes it; a single call is enforced on the response either way
            engine = self._known_engine()
            if engine is None:  # auto mode before detection, or a pool not resolved yet: decided per call
                out.setdefault(PARALLEL_IF_TAKEN, allow_parallel_tool_calls)
            elif takes_chat_param(engine, "parallel_tool_calls"):
                out.setdefault("parallel_tool_calls", allow_parallel_tool_calls)
        return out

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        if not allow_parallel_tool_calls:
            keep_first_tool_call(response)
        return response

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls in ``response`` (streamed partial arguments are parsed as far as they go). Raises
        :class:`InvalidToolCallError` when the finished response holds a call whose arguments are not a JSON
        object (cut off by ``max_tokens``, or malformed), and ValueError when there is none and
        ``error_on_no_tool_call``."""
        selections = tool_selections(response.message)
        if not selections and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but got 0 tool calls.")
        return selections
