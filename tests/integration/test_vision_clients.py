"""Images through engine_clients, LangChain and LlamaIndex on real llama-servers: one with the tiny vision
model (``--mmproj``), one text-only. The vision model turns each image into ``VISION_IMAGE_TOKENS`` prompt
tokens and answers " Hello world." greedily, so usage is what shows the image reached the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_selfhosted import ChatLlamaCpp
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.llms.types import ImageBlock
from llama_index.core.base.llms.types import TextBlock
from llama_index.llms.selfhosted import LlamaCpp
from pydantic import BaseModel

from engine_clients import End
from engine_clients import LlamaCppClient
from engine_clients import Token
from engine_clients import UnsupportedInputError
from engine_clients import VLLMClient
from engine_clients.testing import VISION_IMAGE_TOKENS
from engine_clients.testing import EngineServer
from tests.integration.test_vision_servers import PNG
from tests.integration.test_vision_servers import PNG_B64

pytestmark = pytest.mark.integration

HELLO = " Hello world."
PROMPT = "What is in the picture?"


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    path = tmp_path / "red.png"
    path.write_bytes(PNG)
    return path


def _user(*media: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": PROMPT}, *media]}]


# ---- engine_clients ------------------------------------------------------------------------------------------


def test_client_sends_a_local_image(llama_vision_server: EngineServer, png_file: Path) -> None:
    with LlamaCppClient(llama_vision_server.base_url) as client:
        text = client.chat(_user(), max_tokens=16, temperature=0)
        image = client.chat(_user({"type": "image", "path": str(png_file)}), max_tokens=16, temperature=0)
        two = client.chat(
            _user({"type": "image", "path": str(png_file)}, {"type": "image", "data": PNG}),
            max_tokens=16,
            temperature=0,
        )
    assert image.content == HELLO
    assert text.usage is not None and image.usage is not None and two.usage is not None
    assert image.usage.prompt_tokens == text.usage.prompt_tokens + VISION_IMAGE_TOKENS
    assert two.usage.prompt_tokens == text.usage.prompt_tokens + 2 * VISION_IMAGE_TOKENS


async def test_client_streams_with_an_image(llama_vision_server: EngineServer, png_file: Path) -> None:
    async with LlamaCppClient(llama_vision_server.base_url) as client:
        pieces = []
        end = None
        async for event in client.achat_stream(
            _user({"type": "image_url", "image_url": {"url": png_file.as_uri()}}),
            max_tokens=16,
            temperature=0,
        ):
            if isinstance(event, Token):
                pieces.append(event.text)
            elif isinstance(event, End):
                end = event
    assert "".join(pieces) == HELLO
    assert end is not None and end.usage is not None
    assert end.usage.prompt_tokens > VISION_IMAGE_TOKENS


def test_generate_with_an_image_on_native_completion(
    llama_vision_server: EngineServer, png_file: Path
) -> None:
    """``generate(images=...)``: /completion's multimodal prompt with the marker read from /props."""
    prompt = "<|im_start|>user\nDescribe.<|im_end|>\n<|im_start|>assistant\n"
    with LlamaCppClient(llama_vision_server.base_url) as client:
        text = client.generate(prompt, max_tokens=8, temperature=0)
        image = client.generate(prompt, images=[png_file], max_tokens=8, temperature=0)
        two = client.generate(prompt, images=[PNG, png_file.as_uri()], max_tokens=8, temperature=0)
    assert image.content == HELLO
    assert text.usage is not None and image.usage is not None and two.usage is not None
    assert image.usage.prompt_tokens == text.usage.prompt_tokens + VISION_IMAGE_TOKENS
    assert two.usage.prompt_tokens == text.usage.prompt_tokens + 2 * VISION_IMAGE_TOKENS


async def test_agenerate_stream_with_an_image(llama_vision_server: EngineServer) -> None:
    async with LlamaCppClient(llama_vision_server.base_url) as client:
        events = [e async for e in client.agenerate_stream("Describe.", images=[PNG], max_tokens=8)]
    end = events[-1]
    assert isinstance(end, End) and end.usage is not None
    assert end.usage.prompt_tokens > VISION_IMAGE_TOKENS


def test_text_only_server_refuses_generate_with_an_image(llama_server: EngineServer) -> None:
    with LlamaCppClient(llama_server.base_url) as client, pytest.raises(UnsupportedInputError) as info:
        client.generate("Describe.", images=[PNG], max_tokens=4)
    assert info.value.kind == "image"
    assert info.value.status_code is None  # refused from /props, before /completion
    assert "--mmproj" in str(info.value)


def test_capabilities_from_both_servers(
    llama_vision_server: EngineServer, llama_server: EngineServer
) -> None:
    with LlamaCppClient(llama_vision_server.base_url) as client:
        vision = client.info()
    with LlamaCppClient(llama_server.base_url) as client:
        text = client.info()
    assert (vision.image_inputs, vision.audio_inputs) == (True, False)
    assert (text.image_inputs, text.audio_inputs) == (False, False)
    for info in (vision, text):
        assert info.tool_calling is True  # the tool-capable template, --jinja
        assert info.structured_output is True
        assert info.reasoning is False  # no <think> in the template
        assert info.max_output_tokens == info.max_total_tokens


def test_text_only_server_refuses_an_image_with_the_fix(llama_server: EngineServer, png_file: Path) -> None:
    client = LlamaCppClient(llama_server.base_url, max_retries=2)
    with client, pytest.raises(UnsupportedInputError) as info:
        client.chat(_user({"type": "image", "path": str(png_file)}), max_tokens=4)
    assert info.value.kind == "image"
    assert info.value.status_code == 500
    assert "--mmproj" in str(info.value)


def test_vision_server_refuses_audio(llama_vision_server: EngineServer) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": PNG_B64, "format": "wav"}}
    with LlamaCppClient(llama_vision_server.base_url) as client, pytest.raises(UnsupportedInputError) as info:
        client.chat(_user(audio), max_tokens=4)
    assert info.value.kind == "audio"


def test_vllm_client_sends_a_local_image(vllm_vision_server: EngineServer, png_file: Path) -> None:
    with VLLMClient(vllm_vision_server.base_url) as client:
        text = client.chat(_user(), max_tokens=16, temperature=0)
        image = client.chat(_user({"type": "image", "path": str(png_file)}), max_tokens=16, temperature=0)
        info = client.info()
    assert image.content == HELLO
    assert text.usage is not None and image.usage is not None
    # the image's 16 tokens, plus the placeholder text vLLM's chat template writes for it (20 in all, seen here)
    assert (
        VISION_IMAGE_TOKENS <= image.usage.prompt_tokens - text.usage.prompt_tokens <= VISION_IMAGE_TOKENS + 8
    )
    assert info.image_inputs is None  # vLLM's /v1/models does not say
    assert info.structured_output is True


# ---- LangChain ---------------------------------------------------------------------------------------------


def test_langchain_image_block_counts_image_tokens(llama_vision_server: EngineServer) -> None:
    model = ChatLlamaCpp(base_url=llama_vision_server.base_url, temperature=0, max_tokens=16)
    text = model.invoke([HumanMessage(PROMPT)])
    block = {"type": "image", "base64": PNG_B64, "mime_type": "image/png"}
    image = model.invoke([HumanMessage([{"type": "text", "text": PROMPT}, block])])
    assert image.content == HELLO
    assert text.usage_metadata is not None and image.usage_metadata is not None
    assert image.usage_metadata["input_tokens"] == text.usage_metadata["input_tokens"] + VISION_IMAGE_TOKENS


def test_langchain_profile_from_each_server(
    llama_vision_server: EngineServer, llama_server: EngineServer
) -> None:
    vision = ChatLlamaCpp(base_url=llama_vision_server.base_url).profile
    text = ChatLlamaCpp(base_url=llama_server.base_url).profile
    assert vision is not None and text is not None
    assert vision.get("image_inputs") is True
    assert text.get("image_inputs") is False
    assert text.get("structured_output") is True
    assert text.get("tool_calling") is True


class Answer(BaseModel):
    city: str


def test_create_agent_uses_the_engines_constrained_decoding(llama_server: EngineServer) -> None:
    """With ``profile["structured_output"]`` from the server, create_agent picks ProviderStrategy: the request
    carries response_format json_schema (the engine's grammar), not an extra tool."""
    sent: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> None:
        if request.url.path == "/v1/chat/completions":
            sent.append(json.loads(request.content))

    http = httpx.Client(event_hooks={"request": [record]}, timeout=120)
    client = LlamaCppClient(llama_server.base_url, http_client=http)
    model = ChatLlamaCpp(client=client, temperature=0, max_tokens=64)
    agent = create_agent(model, tools=[], response_format=Answer)
    result = agent.invoke({"messages": [{"role": "user", "content": "Which city?"}]})
    assert isinstance(result["structured_response"], Answer)
    assert len(sent) == 1
    assert sent[0]["response_format"]["type"] == "json_schema"
    assert sent[0]["response_format"]["json_schema"]["schema"]["properties"] == {
        "city": {"title": "City", "type": "string"}
    }
    assert "tools" not in sent[0]  # ToolStrategy would have sent the schema as a tool
    http.close()


# ---- LlamaIndex --------------------------------------------------------------------------------------------


def test_llamaindex_image_block_counts_image_tokens(
    llama_vision_server: EngineServer, png_file: Path
) -> None:
    llm = LlamaCpp(llama_vision_server.base_url, temperature=0, max_tokens=16)
    text = llm.chat([ChatMessage(role="user", content=PROMPT)])
    for block in (ImageBlock(path=png_file), ImageBlock(image=PNG, image_mimetype="image/png")):
        image = llm.chat([ChatMessage(role="user", blocks=[TextBlock(text=PROMPT), block])])
        assert image.message.content == HELLO
        prompt_tokens = image.additional_kwargs["prompt_tokens"]
        assert prompt_tokens == text.additional_kwargs["prompt_tokens"] + VISION_IMAGE_TOKENS


def test_llamaindex_text_only_server_refuses_an_image(llama_server: EngineServer, png_file: Path) -> None:
    llm = LlamaCpp(llama_server.base_url, max_tokens=4)
    with pytest.raises(UnsupportedInputError, match="--mmproj"):
        llm.chat([ChatMessage(role="user", blocks=[TextBlock(text=PROMPT), ImageBlock(path=png_file)])])
