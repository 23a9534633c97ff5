"""langchain-tests' standard integration suite against real engines running a tiny *scripted* model.

The scripted model answers plain chat with " Hello world.", makes a tool call when one is required and
writes schema-valid JSON under a response_format, but it cannot read a prompt: tests that need it to (take
argument values from the question, call a tool unprompted, pick JSON keys described in words) are xfailed,
each with its reason.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_selfhosted import ChatEngine
from langchain_selfhosted import ChatLlamaCpp
from langchain_selfhosted import ChatVLLM
from langchain_tests.integration_tests import ChatModelIntegrationTests

from engine_clients.testing import EngineServer
from tests.integration.test_vision_servers import PNG

pytestmark = pytest.mark.integration

ARGS_FROM_PROMPT = "the scripted model cannot read argument values from the prompt (it sends placeholders)"
UNPROMPTED_TOOL = "with tool_choice='auto' the scripted model answers text; it cannot decide to call a tool"
JSON_KEYS_FROM_PROMPT = "json_mode fixes no schema: the scripted model cannot take the keys from the prompt"
both_outputs = pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)


class _Base(ChatModelIntegrationTests):
    server_fixture = ""

    @pytest.fixture(autouse=True)
    def _server(self, request: pytest.FixtureRequest) -> None:
        self.server: EngineServer = request.getfixturevalue(self.server_fixture)

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # No model: it is discovered from the server, which the usage tests then see as model_name.
        return {"base_url": self.server.base_url, "temperature": 0, "max_tokens": 256}

    @property
    def model_override_value(self) -> str | None:
        # One served model: the "override" names it explicitly where the instance discovered it.
        return self.server.model

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True  # tool_use / thinking blocks and Anthropic-style tools are converted

    @both_outputs
    @pytest.mark.xfail(reason=ARGS_FROM_PROMPT)
    def test_tool_calling(self, model: BaseChatModel) -> None:
        super().test_tool_calling(model)

    @pytest.mark.xfail(reason=ARGS_FROM_PROMPT)
    async def test_tool_calling_async(self, model: BaseChatModel) -> None:
        await super().test_tool_calling_async(model)

    @pytest.mark.xfail(reason=ARGS_FROM_PROMPT)
    def test_unicode_tool_call_integration(
        self, model: BaseChatModel, *, tool_choice: str | None = None, force_tool_call: bool = True
    ) -> None:
        super().test_unicode_tool_call_integration(
            model, tool_choice=tool_choice, force_tool_call=force_tool_call
        )

    @both_outputs
    @pytest.mark.xfail(reason=UNPROMPTED_TOOL)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @pytest.mark.xfail(reason=JSON_KEYS_FROM_PROMPT)
    def test_json_mode(self, model: BaseChatModel) -> None:
        super().test_json_mode(model)


class TestChatLlamaCppIntegration(_Base):
    server_fixture = "llama_server"

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatLlamaCpp


# The image the standard image tests download (they fetch it with httpx.get before calling the model).
STANDARD_TEST_IMAGE = (
    "https://raw.githubusercontent.com/langchain-ai/docs/4d11d08b6b0e210bd456943f7a22febbd168b543/"
    "src/images/agentic-rag-output.png"
)


class TestChatLlamaCppVisionIntegration(_Base):
    """The whole suite on llama-server with the tiny vision projector, image inputs on: the image tests send
    real images (OpenAI image_url, standard base64 blocks, Anthropic image blocks) to a real engine. Their one
    download is answered with a local PNG (no network here); the engine calls stay real. Image URLs are off:
    llama-server would fetch them itself."""

    server_fixture = "llama_vision_server"

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatLlamaCpp

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @pytest.fixture(autouse=True)
    def _local_test_image(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_get = httpx.get

        def get(url: Any, *args: Any, **kwargs: Any) -> httpx.Response:
            if str(url) == STANDARD_TEST_IMAGE:
                return httpx.Response(200, content=PNG, request=httpx.Request("GET", url))
            return real_get(url, *args, **kwargs)

        monkeypatch.setattr(httpx, "get", get)


class TestChatEngineIntegration(_Base):
    """The auto-mode chat model on llama-server: the engine is detected on the first call."""

    server_fixture = "llama_server"

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatEngine


class TestChatVLLMIntegration(_Base):
    server_fixture = "vllm_server"

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatVLLM

    # test_bind_runnables_as_tools and test_tool_calling_with_no_arguments pass since issue 19: a forced tool
    # call ("any" -> "required") sends its tools strict, and vLLM pins strict tools' arguments to the schema
