"""Images on the native text routes (issue 12 item 1): ``generate(prompt, images=[...])``.

TGI ``/generate`` gets them as markdown ``![](url)`` before the prompt in ``inputs``; llama-server
``/completion`` as ``{"prompt_string": <marker per image> + prompt, "multimodal_data": [base64]}`` with the
marker read once from ``/props``; vLLM's ``/v1/completions`` refuses them before sending. Audio is refused
everywhere."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from engine_clients import End
from engine_clients import InvalidRequestError
from engine_clients import LlamaCppClient
from engine_clients import MediaTooLargeError
from engine_clients import TGIClient
from engine_clients import Token
from engine_clients import UnsupportedInputError
from engine_clients import VLLMClient
from tests.support.openapi import validate_request

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAABgAAAAQCAIAAACDRijCAAAAGklEQVR4nGM4IWdDFcQwatCoQaMGjRpEGQIAaL+zEPAuIC0AAAAASUVORK5CYII="
)
PNG_B64 = base64.b64encode(PNG).decode()
DATA_URL = f"data:image/png;base64,{PNG_B64}"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 12
REMOTE = "https://example.test/cat.png"
URL = "http://engine.test"
MARKER = "<__media_1a2b3c__>"
VISION_PROPS = {"modalities": {"vision": True, "audio": False}, "media_marker": MARKER}
TGI_ANSWER = {"generated_text": " red", "details": None}
LLAMA_ANSWER = {
    "content": " red",
    "stop": True,
    "stop_type": "eos",
    "tokens_evaluated": 30,
    "tokens_predicted": 1,
}


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    path = tmp_path / "red.png"
    path.write_bytes(PNG)
    return path


def _forms(png_file: Path) -> list[Any]:
    return [
        DATA_URL,
        str(png_file),
        png_file,
        png_file.as_uri(),
        PNG,
        {"type": "image", "base64": PNG_B64, "mime_type": "image/png"},
        {"type": "image_url", "image_url": {"url": DATA_URL}},
    ]


def _sent(route: respx.Route, i: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls[i].request.content)
    return body


# ---- TGI: markdown images in ``inputs`` ------------------------------------------------------------------------


def test_tgi_generate_puts_markdown_images_before_the_prompt(png_file: Path) -> None:
    client = TGIClient(URL)
    for form in _forms(png_file):
        body = client.build_generate("What is this?", images=[form]).json
        assert body["inputs"] == f"![]({DATA_URL})What is this?"
        validate_request("/generate", body, strict=True)
    two = client.build_generate("Compare.", images=[REMOTE, JPEG], stream=True).json
    jpeg = "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    assert two["inputs"] == f"![]({REMOTE})![]({jpeg})Compare."
    validate_request("/generate_stream", two, strict=True)
    assert client.build_generate("plain").json["inputs"] == "plain"


async def test_tgi_generate_sync_and_async_send_the_images(png_file: Path) -> None:
    with respx.mock:
        route = respx.post(f"{URL}/generate").mock(return_value=httpx.Response(200, json=TGI_ANSWER))
        client = TGIClient(URL)
        assert client.generate("What?", images=[png_file], max_tokens=4).content == " red"
        assert (await client.agenerate("What?", images=[REMOTE], max_tokens=4)).content == " red"
        await client.aclose()
    assert _sent(route, 0)["inputs"] == f"![]({DATA_URL})What?"
    assert _sent(route, 1)["inputs"] == f"![]({REMOTE})What?"


async def test_tgi_generate_stream_sync_and_async_send_the_images() -> None:
    sse = b'data: {"token": {"id": 1, "text": " red", "logprob": -0.1, "special": false}, "generated_text": " red"}\n\n'
    with respx.mock:
        route = respx.post(f"{URL}/generate_stream").mock(
            side_effect=lambda _: httpx.Response(
                200, content=sse, headers={"content-type": "text/event-stream"}
            )
        )
        client = TGIClient(URL)
        events = list(client.generate_stream("What?", images=[DATA_URL]))
        aevents = [e async for e in client.agenerate_stream("What?", images=[PNG])]
        await client.aclose()
    for got in (events, aevents):
        assert "".join(e.text for e in got if isinstance(e, Token)) == " red"
        assert isinstance(got[-1], End)
    assert _sent(route, 0)["inputs"] == _sent(route, 1)["inputs"] == f"![]({DATA_URL})What?"


# ---- llama.cpp: the multimodal prompt object with the server's marker ----------------------------------------


def _llama_mock(props: dict[str, Any]) -> tuple[respx.Route, respx.Route]:
    probe = respx.get(f"{URL}/props").mock(return_value=httpx.Response(200, json=props))
    completion = respx.post(f"{URL}/completion").mock(return_value=httpx.Response(200, json=LLAMA_ANSWER))
    return probe, completion


def test_llamacpp_generate_sends_a_multimodal_prompt_and_reads_the_marker_once(png_file: Path) -> None:
    with respx.mock:
        probe, completion = _llama_mock(VISION_PROPS)
        with LlamaCppClient(URL) as client:
            answer = client.generate("Describe.", images=[png_file, PNG], max_tokens=4)
            client.generate("Again.", images=[DATA_URL])
            client.generate("Text only.")
    assert answer.content == " red"
    assert probe.call_count == 1
    assert _sent(completion, 0)["prompt"] == {
        "prompt_string": f"{MARKER}{MARKER}Describe.",
        "multimodal_data": [PNG_B64, PNG_B64],
    }
    assert _sent(completion, 0)["n_predict"] == 4
    assert _sent(completion, 1)["prompt"] == {
        "prompt_string": f"{MARKER}Again.",
        "multimodal_data": [PNG_B64],
    }
    assert _sent(completion, 2)["prompt"] == "Text only."


async def test_llamacpp_agenerate_and_streams_send_a_multimodal_prompt() -> None:
    sse = (
        b'data: {"content": " red", "stop": false}\n\n'
        b'data: {"content": "", "stop": true, "stop_type": "eos", "tokens_evaluated": 30, "tokens_predicted": 1}\n\n'
    )
    want = {"prompt_string": f"{MARKER}Describe.", "multimodal_data": [PNG_B64]}
    with respx.mock:
        probe = respx.get(f"{URL}/props").mock(return_value=httpx.Response(200, json=VISION_PROPS))
        completion = respx.post(f"{URL}/completion").mock(
            side_effect=lambda r: (
                httpx.Response(200, content=sse, headers={"content-type": "text/event-stream"})
                if json.loads(r.content).get("stream")
                else httpx.Response(200, json=LLAMA_ANSWER)
            )
        )
        client = LlamaCppClient(URL)
        # the first call: its first iteration reads the marker
        events = [e async for e in client.agenerate_stream("Describe.", images=[DATA_URL])]
        answer = await client.agenerate("Describe.", images=[DATA_URL])
        sync_events = list(client.generate_stream("Describe.", images=[PNG]))
        await client.aclose()
    assert probe.call_count == 1
    assert answer.content == " red"
    for got in (events, sync_events):
        assert "".join(e.text for e in got if isinstance(e, Token)) == " red"
        assert isinstance(got[-1], End) and got[-1].usage is not None and got[-1].usage.prompt_tokens == 30
    assert [_sent(completion, i)["prompt"] for i in range(3)] == [want] * 3


@pytest.mark.parametrize(
    ("props", "text"),
    [
        ({"modalities": {"vision": False, "audio": False}, "media_marker": MARKER}, "--mmproj"),
        ({"modalities": {"vision": True}}, "media_marker"),
        ({}, "--mmproj"),
    ],
)
async def test_llamacpp_without_vision_or_marker_refuses_before_sending(
    props: dict[str, Any], text: str
) -> None:
    with respx.mock:
        probe, completion = _llama_mock(props)
        client = LlamaCppClient(URL)
        with pytest.raises(UnsupportedInputError, match=text) as sync_info:
            client.generate("Describe.", images=[DATA_URL])
        with pytest.raises(UnsupportedInputError, match=text) as async_info:
            await client.agenerate("Describe.", images=[DATA_URL])
        with pytest.raises(UnsupportedInputError, match=text):
            [e async for e in client.agenerate_stream("Describe.", images=[DATA_URL])]
        await client.aclose()
    assert sync_info.value.kind == async_info.value.kind == "image"
    assert probe.call_count == 3  # a refusal is not cached
    assert not completion.called


async def test_llamacpp_refuses_remote_image_urls_before_any_request() -> None:
    with respx.mock(assert_all_called=False):
        probe, completion = _llama_mock(VISION_PROPS)
        client = LlamaCppClient(URL)
        with pytest.raises(InvalidRequestError, match="inline images only"):
            client.generate("Describe.", images=[REMOTE])
        with pytest.raises(InvalidRequestError, match="inline images only"):
            client.agenerate_stream("Describe.", images=[REMOTE])
        assert not probe.called and not completion.called
        await client.aclose()


def test_llamacpp_build_generate_needs_the_marker_for_images() -> None:
    with pytest.raises(InvalidRequestError, match="media marker"):
        LlamaCppClient(URL).build_generate("Describe.", images=[DATA_URL])


# ---- vLLM: refused, use chat ----------------------------------------------------------------------------------


async def test_vllm_refuses_images_on_completions_before_sending() -> None:
    with respx.mock(assert_all_called=False):
        route = respx.post(f"{URL}/v1/completions")
        client = VLLMClient(URL, model="m")
        with pytest.raises(InvalidRequestError, match="images need the chat route on vLLM"):
            client.generate("Describe.", images=[DATA_URL])
        with pytest.raises(InvalidRequestError, match="images need the chat route on vLLM"):
            client.generate_stream("Describe.", images=[REMOTE])
        with pytest.raises(InvalidRequestError, match="images need the chat route on vLLM"):
            await client.agenerate("Describe.", images=[PNG])
        with pytest.raises(InvalidRequestError, match="images need the chat route on vLLM"):
            client.agenerate_stream("Describe.", images=[DATA_URL])
        await client.aclose()
    assert not route.called


# ---- refused everywhere before sending: audio, oversized, malformed --------------------------------------------


@pytest.mark.parametrize("cls", [TGIClient, VLLMClient, LlamaCppClient])
async def test_audio_and_bad_images_are_refused_before_sending(cls: Any, tmp_path: Path) -> None:
    audio = [
        {"type": "input_audio", "input_audio": {"data": PNG_B64, "format": "wav"}},
        {"type": "audio", "base64": PNG_B64, "format": "wav"},
    ]
    with respx.mock(assert_all_called=False) as mock:
        client = cls(URL, model="m", max_media_bytes=len(PNG) - 1)
        for part in audio:
            with pytest.raises(InvalidRequestError, match="audio"):
                client.generate("x", images=[part])
            with pytest.raises(InvalidRequestError, match="audio"):
                await client.agenerate("x", images=[part])
        with pytest.raises(MediaTooLargeError):
            client.generate("x", images=[PNG])
        with pytest.raises(MediaTooLargeError):
            client.agenerate_stream("x", images=[DATA_URL])
        with pytest.raises(InvalidRequestError, match="must be a list"):
            client.generate("x", images=DATA_URL)
        with pytest.raises(InvalidRequestError, match="cannot read"):
            client.generate("x", images=[str(tmp_path / "missing.png")])
        with pytest.raises(InvalidRequestError, match="not an image part"):
            client.generate("x", images=[{"type": "text", "text": "hi"}])
        await client.aclose()
    assert not mock.calls
