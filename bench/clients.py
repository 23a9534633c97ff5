"""Every client the bench measures, behind one shape: ``setup(base_url)`` builds the client object once and
returns ``one()``, which opens one streamed chat (or completion) and yields the text of each content chunk.

``base_url`` is the firehose (or engine) root, e.g. ``http://127.0.0.1:PORT/vllm/20000/0/0``; each client
adds the route it would use against a real engine. Imports happen inside ``setup`` so that a worker process
only imports the libraries of the client it measures.

Groups: ``raw`` (httpx + httpx-sse + json loops: the floor of this stack), ``ours`` (engine_clients and the
integrations), ``peer`` (other libraries, on the same server), ``floor`` (no-op LangChain / LlamaIndex models
that stream prebuilt text without any HTTP: what the frameworks themselves cost per chunk).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any

MODEL = "bench-model"
PROMPT = "Write a long story."
MESSAGES = [{"role": "user", "content": PROMPT}]
MAX_TOKENS = 1_000_000  # the firehose decides the length; real engines get the scenario's own value


@dataclass(frozen=True)
class Spec:
    name: str
    group: str  # raw | ours | peer
    mode: str  # sync | async
    setup: Callable[[str, dict[str, Any]], Callable[[], Any]]
    dialect: str = "vllm"  # which firehose dialect it is pointed at
    route: str = "chat"
    twin: str = ""  # the raw loop it is compared with
    label: str = ""
    needs: tuple[str, ...] = field(default=())  # importable modules it needs (skipped with a note if missing)
    scenario: str = "stream_decode"  # the scenario that measures it
    think: str = ""  # reasoning_decode: the firehose dialect suffix of its reasoning stream ("think", ...)
    tokens: int = 0  # stream_decode: tokens per stream when not the scenario's (SGLang's cumulative stream)
    loop: str = ""  # concurrency: "uvloop" runs it on uvloop's event loop instead of asyncio's

    @property
    def title(self) -> str:
        return self.label or self.name


# ---- raw loops -------------------------------------------------------------------------------------------


def _raw_body(route: str, opts: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    mt = opts.get("max_tokens", MAX_TOKENS)
    if route == "chat":
        body = {"model": MODEL, "messages": MESSAGES, "stream": True, "max_tokens": mt}
        body.update(opts.get("extra_body") or {})
        return "/v1/chat/completions", body
    if route == "generate_stream":
        return "/generate_stream", {"inputs": PROMPT, "parameters": {"max_new_tokens": mt, "details": True}}
    if route == "completion":
        body = {"prompt": PROMPT, "n_predict": mt, "stream": True}
        body.update(opts.get("extra_body") or {})
        return "/completion", body
    raise ValueError(route)


def _raw_text(route: str, obj: Any) -> str | None:
    if route == "chat":
        choices = obj.get("choices")
        if choices:
            return choices[0].get("delta", {}).get("content")
        return None
    if route == "generate_stream":
        tok = obj.get("token")
        return None if tok is None or tok.get("special") else tok.get("text")
    return obj.get("content")  # llama.cpp /completion


def raw_sync(loads: Callable[[Any], Any] = json.loads, route: str = "chat"):
    def setup(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
        import httpx
        from httpx_sse import connect_sse

        client = httpx.Client(timeout=httpx.Timeout(600.0), limits=httpx.Limits(max_connections=None))
        path, body = _raw_body(route, opts)
        url = base + path

        def one() -> Iterator[str]:
            with connect_sse(client, "POST", url, json=body) as source:
                for sse in source.iter_sse():
                    if sse.data == "[DONE]":
                        break
                    text = _raw_text(route, loads(sse.data))
                    if text:
                        yield text

        return one

    return setup


def raw_async(loads: Callable[[Any], Any] = json.loads, route: str = "chat"):
    def setup(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
        import httpx
        from httpx_sse import aconnect_sse

        client = httpx.AsyncClient(
            timeout=httpx.Timeout(600.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
        )
        path, body = _raw_body(route, opts)
        url = base + path

        async def one() -> AsyncIterator[str]:
            async with aconnect_sse(client, "POST", url, json=body) as source:
                async for sse in source.aiter_sse():
                    if sse.data == "[DONE]":
                        break
                    text = _raw_text(route, loads(sse.data))
                    if text:
                        yield text

        return one

    return setup


SGLANG_TOKENS = 2000  # cumulative /generate events grow with the text: ~20 MB per stream at this length


def raw_sglang_sync(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
    """SGLang's native ``/generate`` stream by hand: each event has the whole text so far, so the loop keeps
    the length already yielded and slices off the new part (the least a correct consumer does)."""
    import httpx
    from httpx_sse import connect_sse

    client = httpx.Client(timeout=httpx.Timeout(600.0), limits=httpx.Limits(max_connections=None))
    body = {
        "text": PROMPT,
        "sampling_params": {"max_new_tokens": opts.get("max_tokens", MAX_TOKENS)},
        "stream": True,
    }

    def one() -> Iterator[str]:
        sent = 0
        with connect_sse(client, "POST", base + "/generate", json=body) as source:
            for sse in source.iter_sse():
                if sse.data == "[DONE]":
                    break
                text = json.loads(sse.data)["text"]
                if len(text) > sent:
                    yield text[sent:]
                    sent = len(text)

    return one


def _orjson_loads() -> Callable[[Any], Any]:
    import orjson

    return orjson.loads


def raw_sync_orjson(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
    return raw_sync(_orjson_loads())(base, opts)


# ---- engine_clients --------------------------------------------------------------------------------------

_EC_CLASSES = {
    "vllm": "VLLMClient",
    "tgi": "TGIClient",
    "llamacpp": "LlamaCppClient",
    "sglang": "SGLangClient",
}


def _ec_client(base: str, dialect: str) -> Any:
    import engine_clients

    cls = getattr(engine_clients, _EC_CLASSES[dialect])
    return cls(base, model=MODEL if dialect != "tgi" else None, timeout=600.0)


def ec_sync(dialect: str, route: str = "chat"):
    def setup(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
        from engine_clients import Token

        client = _ec_client(base, dialect)
        kw = {"max_tokens": opts.get("max_tokens", MAX_TOKENS)}
        if opts.get("extra_body"):
            kw["extra_body"] = opts["extra_body"]

        def one() -> Iterator[str]:
            it = (
                client.chat_stream(MESSAGES, **kw)
                if route == "chat"
                else client.generate_stream(PROMPT, **kw)
            )
            for ev in it:
                if type(ev) is Token:
                    yield ev.text

        return one

    return setup


def ec_async(dialect: str, route: str = "chat"):
    def setup(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
        from engine_clients import Token

        client = _ec_client(base, dialect)
        kw = {"max_tokens": opts.get("max_tokens", MAX_TOKENS)}
        if opts.get("extra_body"):
            kw["extra_body"] = opts["extra_body"]

        async def one() -> AsyncIterator[str]:
            it = (
                client.achat_stream(MESSAGES, **kw)
                if route == "chat"
                else client.agenerate_stream(PROMPT, **kw)
            )
            async for ev in it:
                if type(ev) is Token:
                    yield ev.text

        return one

    return setup


# ---- reasoning consumers: thinking and answer text alike, the split kept for the check -------------------
#
# The same consumer reads the plain stream and the reasoning stream it is compared with, so that the two
# differ only in what the client does with them. ``one.split`` holds (reasoning chars, answer chars) of the
# stream last drained; the worker checks it against the firehose's expected split.


def _counting(gen: Callable[[list[int]], Iterator[str]]) -> Callable[[], Iterator[str]]:
    def one() -> Iterator[str]:
        split = one.split = [0, 0]  # type: ignore[attr-defined]
        return gen(split)

    one.split = [0, 0]  # type: ignore[attr-defined]
    return one


def _acounting(gen: Callable[[list[int]], AsyncIterator[str]]) -> Callable[[], AsyncIterator[str]]:
    def one() -> AsyncIterator[str]:
        split = one.split = [0, 0]  # type: ignore[attr-defined]
        return gen(split)

    one.split = [0, 0]  # type: ignore[attr-defined]
    return one


def ec_sync_all(dialect: str):
    """``chat_stream`` yielding both :class:`Reasoning` and :class:`Token` texts."""

    def setup(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
        from engine_clients import Reasoning
        from engine_clients import Token

        client = _ec_client(base, dialect)
        kw = {"max_tokens": opts.get("max_tokens", MAX_TOKENS)}

        def gen(split: list[int]) -> Iterator[str]:
            for ev in client.chat_stream(MESSAGES, **kw):
                t = type(ev)
                if t is Token:
                    split[1] += len(ev.text)
                    yield ev.text
                elif t is Reasoning:
                    split[0] += len(ev.text)
                    yield ev.text

        return _counting(gen)

    return setup


def ec_async_all(dialect: str):
    def setup(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
        from engine_clients import Reasoning
        from engine_clients import Token

        client = _ec_client(base, dialect)
        kw = {"max_tokens": opts.get("max_tokens", MAX_TOKENS)}

        async def gen(split: list[int]) -> AsyncIterator[str]:
            async for ev in client.achat_stream(MESSAGES, **kw):
                t = type(ev)
                if t is Token:
                    split[1] += len(ev.text)
                    yield ev.text
                elif t is Reasoning:
                    split[0] += len(ev.text)
                    yield ev.text

        return _acounting(gen)

    return setup


def lc_sync_all(dialect: str):
    """``ChatX.stream``: the answer in ``chunk.content``, thinking in
    ``chunk.additional_kwargs["reasoning_content"]``."""

    def setup(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
        import langchain_selfhosted as lc

        model = _construct(getattr(lc, _LC_CLASSES[dialect]), base, opts, dialect)

        def gen(split: list[int]) -> Iterator[str]:
            for chunk in model.stream(PROMPT):
                text = chunk.content
                if text:
                    split[1] += len(text)
                    yield text  # type: ignore[misc]
                else:
                    thought = chunk.additional_kwargs.get("reasoning_content")
                    if thought:
                        split[0] += len(thought)
                        yield thought

        return _counting(gen)

    return setup


def li_sync_all(dialect: str):
    """``stream_chat``: the answer in ``r.delta``, thinking in ``r.additional_kwargs["thinking_delta"]``."""

    def setup(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
        import llama_index.llms.selfhosted as li
        from llama_index.core.llms import ChatMessage

        llm = _construct(getattr(li, _LI_CLASSES[dialect]), base, opts, dialect)
        msgs = [ChatMessage(role="user", content=PROMPT)]

        def gen(split: list[int]) -> Iterator[str]:
            for r in llm.stream_chat(msgs):
                if r.delta:
                    split[1] += len(r.delta)
                    yield r.delta
                else:
                    thought = r.additional_kwargs.get("thinking_delta")
                    if thought:
                        split[0] += len(thought)
                        yield thought

        return _counting(gen)

    return setup


# ---- our integrations ------------------------------------------------------------------------------------

_LC_CLASSES = {"vllm": "ChatVLLM", "tgi": "ChatTGI", "llamacpp": "ChatLlamaCpp"}
_LI_CLASSES = {"vllm": "VLLM", "tgi": "TGI", "llamacpp": "LlamaCpp"}


def _construct(cls: Any, base: str, opts: dict[str, Any], dialect: str) -> Any:
    """Build an integration model, trying the constructor spellings the integrations may use."""
    kw: dict[str, Any] = {"max_tokens": opts.get("max_tokens", MAX_TOKENS)}
    if dialect != "tgi":
        kw["model"] = MODEL
    if opts.get("extra_body"):
        kw["extra_body"] = opts["extra_body"]
    errors = []
    for url_key in ("base_url", "api_base", "url"):
        for drop in ((), ("extra_body",), ("model",), ("extra_body", "model")):
            args = {k: v for k, v in kw.items() if k not in drop}
            try:
                return cls(**{url_key: base}, **args)
            except TypeError as exc:  # unknown keyword
                errors.append(f"{url_key}: {exc}")
            except Exception as exc:  # pydantic validation error for an unknown/invalid field
                if "extra" in str(exc).lower() or "unexpected" in str(exc).lower():
                    errors.append(f"{url_key}: {exc}")
                    continue
                raise
    raise TypeError(f"cannot construct {cls.__name__}: " + " | ".join(errors[-3:]))


def lc_sync(dialect: str):
    def setup(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
        import langchain_selfhosted as lc

        model = _construct(getattr(lc, _LC_CLASSES[dialect]), base, opts, dialect)

        def one() -> Iterator[str]:
            for chunk in model.stream(PROMPT):
                if chunk.content:
                    yield chunk.content

        return one

    return setup


def lc_async(dialect: str):
    def setup(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
        import langchain_selfhosted as lc

        model = _construct(getattr(lc, _LC_CLASSES[dialect]), base, opts, dialect)

        async def one() -> AsyncIterator[str]:
            async for chunk in model.astream(PROMPT):
                if chunk.content:
                    yield chunk.content

        return one

    return setup


def li_sync(dialect: str):
    def setup(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
        import llama_index.llms.selfhosted as li
        from llama_index.core.llms import ChatMessage

        llm = _construct(getattr(li, _LI_CLASSES[dialect]), base, opts, dialect)
        msgs = [ChatMessage(role="user", content=PROMPT)]

        def one() -> Iterator[str]:
            for r in llm.stream_chat(msgs):
                if r.delta:
                    yield r.delta

        return one

    return setup


def li_async(dialect: str):
    def setup(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
        import llama_index.llms.selfhosted as li
        from llama_index.core.llms import ChatMessage

        llm = _construct(getattr(li, _LI_CLASSES[dialect]), base, opts, dialect)
        msgs = [ChatMessage(role="user", content=PROMPT)]

        async def one() -> AsyncIterator[str]:
            async for r in await llm.astream_chat(msgs):
                if r.delta:
                    yield r.delta

        return one

    return setup


# ---- peers -----------------------------------------------------------------------------------------------


def openai_sync(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
    from openai import OpenAI

    client = OpenAI(base_url=base + "/v1", api_key="bench", timeout=600.0, max_retries=0)
    mt = opts.get("max_tokens", MAX_TOKENS)
    extra = opts.get("extra_body")

    def one() -> Iterator[str]:
        stream = client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            max_tokens=mt,
            extra_body=extra,  # type: ignore[arg-type]
        )
        for chunk in stream:
            if chunk.choices:
                text = chunk.choices[0].delta.content
                if text:
                    yield text

    return one


def openai_async(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base + "/v1", api_key="bench", timeout=600.0, max_retries=0)
    mt = opts.get("max_tokens", MAX_TOKENS)

    async def one() -> AsyncIterator[str]:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            max_tokens=mt,  # type: ignore[arg-type]
        )
        async for chunk in stream:
            if chunk.choices:
                text = chunk.choices[0].delta.content
                if text:
                    yield text

    return one


def _chat_openai(base: str, opts: dict[str, Any]) -> Any:
    from langchain_openai import ChatOpenAI

    kw: dict[str, Any] = {}
    if opts.get("extra_body"):
        kw["extra_body"] = opts["extra_body"]
    return ChatOpenAI(
        base_url=base + "/v1",
        api_key="bench",  # type: ignore[arg-type]
        model=MODEL,
        max_tokens=opts.get("max_tokens", MAX_TOKENS),  # type: ignore[call-arg]
        timeout=600.0,
        max_retries=0,
        **kw,
    )


def chat_openai_sync(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
    model = _chat_openai(base, opts)

    def one() -> Iterator[str]:
        for chunk in model.stream(PROMPT):
            if chunk.content:
                yield chunk.content  # type: ignore[misc]

    return one


def chat_openai_async(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    model = _chat_openai(base, opts)

    async def one() -> AsyncIterator[str]:
        async for chunk in model.astream(PROMPT):
            if chunk.content:
                yield chunk.content  # type: ignore[misc]

    return one


def _chat_hf(base: str, opts: dict[str, Any]) -> Any:
    from langchain_huggingface import ChatHuggingFace
    from langchain_huggingface import HuggingFaceEndpoint

    llm = HuggingFaceEndpoint(  # type: ignore[call-arg]
        endpoint_url=base,
        max_new_tokens=opts.get("max_tokens", MAX_TOKENS),
        timeout=600,
        task="text-generation",
    )
    return ChatHuggingFace(llm=llm)


def chat_hf_sync(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
    model = _chat_hf(base, opts)

    def one() -> Iterator[str]:
        for chunk in model.stream(PROMPT):
            if chunk.content:
                yield chunk.content  # type: ignore[misc]

    return one


def chat_hf_async(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    model = _chat_hf(base, opts)

    async def one() -> AsyncIterator[str]:
        async for chunk in model.astream(PROMPT):
            if chunk.content:
                yield chunk.content  # type: ignore[misc]

    return one


def hf_client_sync(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=base + "/v1", timeout=600)
    mt = opts.get("max_tokens", MAX_TOKENS)

    def one() -> Iterator[str]:
        for chunk in client.chat_completion(MESSAGES, stream=True, max_tokens=mt, model=MODEL):
            if chunk.choices:
                text = chunk.choices[0].delta.content
                if text:
                    yield text

    return one


def hf_client_async(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    from huggingface_hub import AsyncInferenceClient

    client = AsyncInferenceClient(base_url=base + "/v1", timeout=600)
    mt = opts.get("max_tokens", MAX_TOKENS)

    async def one() -> AsyncIterator[str]:
        async for chunk in await client.chat_completion(MESSAGES, stream=True, max_tokens=mt, model=MODEL):
            if chunk.choices:
                text = chunk.choices[0].delta.content
                if text:
                    yield text

    return one


def _openai_like(base: str, opts: dict[str, Any]) -> Any:
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(
        model=MODEL,
        api_base=base + "/v1",
        api_key="bench",
        is_chat_model=True,
        max_tokens=opts.get("max_tokens", MAX_TOKENS),
        timeout=600.0,
        max_retries=0,
        context_window=1_000_000,
    )


def openai_like_sync(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
    from llama_index.core.llms import ChatMessage

    llm = _openai_like(base, opts)
    msgs = [ChatMessage(role="user", content=PROMPT)]

    def one() -> Iterator[str]:
        for r in llm.stream_chat(msgs):
            if r.delta:
                yield r.delta

    return one


def openai_like_async(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    from llama_index.core.llms import ChatMessage

    llm = _openai_like(base, opts)
    msgs = [ChatMessage(role="user", content=PROMPT)]

    async def one() -> AsyncIterator[str]:
        async for r in await llm.astream_chat(msgs):
            if r.delta:
                yield r.delta

    return one


# ---- framework floors (no network): what LangChain / LlamaIndex themselves cost per chunk -----------------


def _floor_texts(base: str) -> list[str]:
    from bench.firehose import token_text

    n = int(base.rstrip("/").split("/")[-3])  # .../{dialect}/{tokens}/{delay}/{ttft}
    return [token_text(i) for i in range(n)]


def _lc_noop(base: str, source: Callable[[], AsyncIterator[str]] | None = None) -> Any:
    """A no-op ``BaseChatModel`` whose ``_stream``/``_astream`` yield prebuilt-text chunks; with ``source``
    (an async text stream, e.g. the raw aiohttp loop), ``_astream`` yields its texts instead."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.messages import AIMessageChunk
    from langchain_core.outputs import ChatGeneration
    from langchain_core.outputs import ChatGenerationChunk
    from langchain_core.outputs import ChatResult

    texts = _floor_texts(base) if source is None else []

    class NoOpChat(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "noop"

        def _generate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> ChatResult:
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content="".join(texts)))])

        def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
            for t in texts:
                yield ChatGenerationChunk(message=AIMessageChunk(content=t, id="noop"))

        async def _astream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
            if source is not None:  # no id: LangChain gives each chunk the run's, as for a real model
                async for t in source():
                    yield ChatGenerationChunk(message=AIMessageChunk(content=t))
                return
            for t in texts:
                yield ChatGenerationChunk(message=AIMessageChunk(content=t, id="noop"))

    return NoOpChat()


def lc_noop_sync(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
    """LangChain's own floor: ``stream`` over the no-op model."""
    model = _lc_noop(base)

    def one() -> Iterator[str]:
        for chunk in model.stream(PROMPT):
            if chunk.content:
                yield chunk.content  # type: ignore[misc]

    return one


def lc_noop_async(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    """LangChain's own floor for ``astream``."""
    return lc_astream(_lc_noop(base))


def lc_astream(model: Any) -> Callable[[], AsyncIterator[str]]:
    """The texts of ``model.astream``, one stream per call."""

    async def one() -> AsyncIterator[str]:
        async for chunk in model.astream(PROMPT):
            if chunk.content:
                yield chunk.content  # type: ignore[misc]

    return one


def _li_noop(base: str) -> Any:
    """A no-op ``CustomLLM`` streaming prebuilt text (``stream_chat``/``astream_chat`` go through it)."""
    from llama_index.core.llms import CompletionResponse
    from llama_index.core.llms import CustomLLM
    from llama_index.core.llms import LLMMetadata
    from llama_index.core.llms.callbacks import llm_completion_callback

    texts = _floor_texts(base)

    class NoOpLLM(CustomLLM):
        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="noop")

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kw: Any) -> CompletionResponse:
            return CompletionResponse(text="".join(texts))

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kw: Any) -> Any:
            def gen() -> Any:
                text = ""
                for t in texts:
                    text += t
                    yield CompletionResponse(text=text, delta=t)

            return gen()

    return NoOpLLM()


def li_noop_sync(base: str, opts: dict[str, Any]) -> Callable[[], Iterator[str]]:
    """LlamaIndex's own floor: ``stream_chat`` over the no-op LLM."""
    from llama_index.core.llms import ChatMessage

    llm = _li_noop(base)
    msgs = [ChatMessage(role="user", content=PROMPT)]

    def one() -> Iterator[str]:
        for r in llm.stream_chat(msgs):
            if r.delta:
                yield r.delta

    return one


def li_noop_async(base: str, opts: dict[str, Any]) -> Callable[[], AsyncIterator[str]]:
    """LlamaIndex's own floor for ``astream_chat`` (``CustomLLM`` runs its sync stream inside it)."""
    from llama_index.core.llms import ChatMessage

    llm = _li_noop(base)
    msgs = [ChatMessage(role="user", content=PROMPT)]

    async def one() -> AsyncIterator[str]:
        async for r in await llm.astream_chat(msgs):
            if r.delta:
                yield r.delta

    return one


# ---- the registry ----------------------------------------------------------------------------------------

_LC = ("langchain_selfhosted",)
_LI = ("llama_index.llms.selfhosted",)

SPECS: list[Spec] = [
    # raw floors
    Spec("raw:httpx-sse+json", "raw", "sync", raw_sync(), label="raw httpx+httpx-sse+json (sync)"),
    Spec("raw:httpx-sse+json:async", "raw", "async", raw_async(), label="raw httpx+httpx-sse+json (async)"),
    Spec("raw:httpx-sse+orjson", "raw", "sync", raw_sync_orjson, label="raw httpx+httpx-sse+orjson (sync)"),
    Spec("raw:httpx-sse+json:tgi", "raw", "sync", raw_sync(), dialect="tgi", label="raw loop, TGI chat"),
    Spec(
        "raw:httpx-sse+json:llamacpp",
        "raw",
        "sync",
        raw_sync(),
        dialect="llamacpp",
        label="raw loop, llama.cpp chat",
    ),
    Spec(
        "raw:httpx-sse+json:tgi-generate",
        "raw",
        "sync",
        raw_sync(route="generate_stream"),
        dialect="tgi",
        route="generate_stream",
        label="raw loop, TGI /generate_stream",
    ),
    Spec(
        "raw:httpx-sse+json:sglang-generate",
        "raw",
        "sync",
        raw_sglang_sync,
        dialect="sglang",
        route="generate",
        label="raw loop, SGLang /generate (cumulative text)",
        tokens=SGLANG_TOKENS,
    ),
    Spec(
        "raw:httpx-sse+json:llamacpp-completion",
        "raw",
        "sync",
        raw_sync(route="completion"),
        dialect="llamacpp",
        route="completion",
        label="raw loop, llama.cpp /completion",
    ),
    # ours
    Spec("engine_clients:VLLMClient.chat_stream", "ours", "sync", ec_sync("vllm"), twin="raw:httpx-sse+json"),
    Spec(
        "engine_clients:VLLMClient.achat_stream",
        "ours",
        "async",
        ec_async("vllm"),
        twin="raw:httpx-sse+json:async",
    ),
    Spec(
        "engine_clients:TGIClient.chat_stream",
        "ours",
        "sync",
        ec_sync("tgi"),
        dialect="tgi",
        twin="raw:httpx-sse+json:tgi",
    ),
    Spec(
        "engine_clients:LlamaCppClient.chat_stream",
        "ours",
        "sync",
        ec_sync("llamacpp"),
        dialect="llamacpp",
        twin="raw:httpx-sse+json:llamacpp",
    ),
    Spec(
        "engine_clients:TGIClient.generate_stream",
        "ours",
        "sync",
        ec_sync("tgi", "generate_stream"),
        dialect="tgi",
        route="generate_stream",
        twin="raw:httpx-sse+json:tgi-generate",
    ),
    Spec(
        "engine_clients:SGLangClient.generate_stream",
        "ours",
        "sync",
        ec_sync("sglang", "generate"),
        dialect="sglang",
        route="generate",
        twin="raw:httpx-sse+json:sglang-generate",
        label="SGLangClient.generate_stream (/generate, cumulative text -> deltas)",
        tokens=SGLANG_TOKENS,
    ),
    Spec(
        "engine_clients:LlamaCppClient.generate_stream",
        "ours",
        "sync",
        ec_sync("llamacpp", "completion"),
        dialect="llamacpp",
        route="completion",
        twin="raw:httpx-sse+json:llamacpp-completion",
    ),
    Spec(
        "langchain:ChatVLLM",
        "ours",
        "sync",
        lc_sync("vllm"),
        twin="raw:httpx-sse+json",
        needs=_LC,
        label="langchain:ChatVLLM.stream",
    ),
    Spec(
        "langchain:ChatVLLM:async",
        "ours",
        "async",
        lc_async("vllm"),
        twin="raw:httpx-sse+json:async",
        needs=_LC,
        label="langchain:ChatVLLM.astream",
    ),
    Spec(
        "llamaindex:TGI",
        "ours",
        "sync",
        li_sync("tgi"),
        dialect="tgi",
        twin="raw:httpx-sse+json:tgi",
        needs=_LI,
        label="llamaindex:TGI.stream_chat",
    ),
    Spec(
        "llamaindex:LlamaCpp",
        "ours",
        "sync",
        li_sync("llamacpp"),
        dialect="llamacpp",
        twin="raw:httpx-sse+json:llamacpp",
        needs=_LI,
        label="llamaindex:LlamaCpp.stream_chat",
    ),
    Spec(
        "langchain:ChatTGI",
        "ours",
        "sync",
        lc_sync("tgi"),
        dialect="tgi",
        twin="raw:httpx-sse+json:tgi",
        needs=_LC,
        label="langchain:ChatTGI.stream",
    ),
    Spec(
        "langchain:ChatLlamaCpp",
        "ours",
        "sync",
        lc_sync("llamacpp"),
        dialect="llamacpp",
        twin="raw:httpx-sse+json:llamacpp",
        needs=_LC,
        label="langchain:ChatLlamaCpp.stream",
    ),
    Spec(
        "llamaindex:VLLM",
        "ours",
        "sync",
        li_sync("vllm"),
        twin="raw:httpx-sse+json",
        needs=_LI,
        label="llamaindex:VLLM.stream_chat",
    ),
    Spec(
        "llamaindex:VLLM:async",
        "ours",
        "async",
        li_async("vllm"),
        twin="raw:httpx-sse+json:async",
        needs=_LI,
        label="llamaindex:VLLM.astream_chat",
    ),
    # reasoning_decode: each is timed on a plain stream and on a reasoning stream (half thinking) of the same
    # token count, in the same worker process; ``think`` is the firehose suffix of the reasoning one
    Spec(
        "engine_clients:VLLMClient.chat_stream+think",
        "ours",
        "sync",
        ec_sync_all("vllm"),
        think="think",
        scenario="reasoning_decode",
        label="VLLMClient.chat_stream, delta.reasoning",
    ),
    Spec(
        "langchain:ChatVLLM+think",
        "ours",
        "sync",
        lc_sync_all("vllm"),
        think="think",
        scenario="reasoning_decode",
        needs=_LC,
        label="ChatVLLM.stream, delta.reasoning",
    ),
    Spec(
        "engine_clients:TGIClient.chat_stream+think",
        "ours",
        "sync",
        ec_sync_all("tgi"),
        dialect="tgi",
        think="think",
        scenario="reasoning_decode",
        label="TGIClient.chat_stream, <think> in content (client-side splitter)",
    ),
    Spec(
        "engine_clients:LlamaCppClient.chat_stream+think",
        "ours",
        "sync",
        ec_sync_all("llamacpp"),
        dialect="llamacpp",
        think="think",
        scenario="reasoning_decode",
        label="LlamaCppClient.chat_stream, delta.reasoning_content",
    ),
    Spec(
        "engine_clients:VLLMClient.chat_stream+thinktags",
        "ours",
        "sync",
        ec_sync_all("vllm"),
        think="thinktags",
        scenario="reasoning_decode",
        label="VLLMClient.chat_stream, <think> in content (no reasoning parser)",
    ),
    Spec(
        "engine_clients:VLLMClient.achat_stream+think",
        "ours",
        "async",
        ec_async_all("vllm"),
        think="think",
        scenario="reasoning_decode",
        label="VLLMClient.achat_stream, delta.reasoning",
    ),
    Spec(
        "langchain:ChatTGI+think",
        "ours",
        "sync",
        lc_sync_all("tgi"),
        dialect="tgi",
        think="think",
        scenario="reasoning_decode",
        needs=_LC,
        label="ChatTGI.stream, <think> in content",
    ),
    Spec(
        "langchain:ChatLlamaCpp+think",
        "ours",
        "sync",
        lc_sync_all("llamacpp"),
        dialect="llamacpp",
        think="think",
        scenario="reasoning_decode",
        needs=_LC,
        label="ChatLlamaCpp.stream, delta.reasoning_content",
    ),
    Spec(
        "llamaindex:VLLM+think",
        "ours",
        "sync",
        li_sync_all("vllm"),
        think="think",
        scenario="reasoning_decode",
        needs=_LI,
        label="llama-index VLLM.stream_chat, delta.reasoning",
    ),
    # framework floors: no HTTP at all
    Spec(
        "floor:langchain-core:noop.stream",
        "floor",
        "sync",
        lc_noop_sync,
        label="floor: no-op LangChain BaseChatModel.stream (no HTTP)",
    ),
    Spec(
        "floor:llama-index-core:noop.stream_chat",
        "floor",
        "sync",
        li_noop_sync,
        label="floor: no-op LlamaIndex CustomLLM.stream_chat (no HTTP)",
    ),
    Spec(
        "floor:langchain-core:noop.astream",
        "floor",
        "async",
        lc_noop_async,
        label="floor: no-op LangChain BaseChatModel.astream (no HTTP)",
    ),
    Spec(
        "floor:llama-index-core:noop.astream_chat",
        "floor",
        "async",
        li_noop_async,
        label="floor: no-op LlamaIndex CustomLLM.astream_chat (no HTTP)",
    ),
    # peers
    Spec(
        "peer:openai",
        "peer",
        "sync",
        openai_sync,
        twin="raw:httpx-sse+json",
        label="openai SDK chat.completions (sync)",
    ),
    Spec(
        "peer:openai:async",
        "peer",
        "async",
        openai_async,
        twin="raw:httpx-sse+json:async",
        label="openai SDK chat.completions (async)",
    ),
    Spec(
        "peer:langchain-openai:ChatOpenAI",
        "peer",
        "sync",
        chat_openai_sync,
        twin="raw:httpx-sse+json",
        label="langchain-openai ChatOpenAI.stream",
    ),
    Spec(
        "peer:langchain-openai:ChatOpenAI:async",
        "peer",
        "async",
        chat_openai_async,
        twin="raw:httpx-sse+json:async",
        label="langchain-openai ChatOpenAI.astream",
    ),
    Spec(
        "peer:langchain-huggingface:ChatHuggingFace",
        "peer",
        "sync",
        chat_hf_sync,
        twin="raw:httpx-sse+json",
        label="langchain-huggingface ChatHuggingFace.stream",
    ),
    Spec(
        "peer:langchain-huggingface:ChatHuggingFace:async",
        "peer",
        "async",
        chat_hf_async,
        twin="raw:httpx-sse+json:async",
        label="langchain-huggingface ChatHuggingFace.astream",
    ),
    Spec(
        "peer:huggingface_hub:InferenceClient",
        "peer",
        "sync",
        hf_client_sync,
        twin="raw:httpx-sse+json",
        label="huggingface_hub InferenceClient.chat_completion",
    ),
    Spec(
        "peer:huggingface_hub:AsyncInferenceClient",
        "peer",
        "async",
        hf_client_async,
        twin="raw:httpx-sse+json:async",
        label="huggingface_hub AsyncInferenceClient.chat_completion",
    ),
    Spec(
        "peer:llama-index:OpenAILike",
        "peer",
        "sync",
        openai_like_sync,
        twin="raw:httpx-sse+json",
        label="llama-index OpenAILike.stream_chat",
    ),
    Spec(
        "peer:llama-index:OpenAILike:async",
        "peer",
        "async",
        openai_like_async,
        twin="raw:httpx-sse+json:async",
        label="llama-index OpenAILike.astream_chat",
    ),
]

from bench.transports import TRANSPORT_SPECS  # noqa: E402 - it builds on the helpers above

SPECS += TRANSPORT_SPECS
# the same clients on uvloop's event loop (concurrency scenario): an option where installed, never required
_ON_UVLOOP = (
    "raw:asyncio-protocol:async",
    "raw:aiohttp+json:async",
    "engine_clients:VLLMClient.achat_stream",
    "engine_clients:VLLMClient.achat_stream:aiohttp",
    "langchain:ChatVLLM:async:aiohttp",
)
SPECS += [
    dataclasses.replace(
        s, name=f"{s.name}:uvloop", loop="uvloop", needs=(*s.needs, "uvloop"), label=f"{s.title}, on uvloop"
    )
    for s in SPECS
    if s.name in _ON_UVLOOP
]
BY_NAME = {s.name: s for s in SPECS}


def missing_needs(spec: Spec) -> str | None:
    """Why a client cannot run here (an integration not importable yet), or None."""
    import importlib

    for mod in spec.needs:
        try:
            m = importlib.import_module(mod)
        except Exception as exc:  # ImportError, or a half-written module
            return f"{mod} does not import ({type(exc).__name__}: {exc})"
        if mod in _LC + _LI and spec.group == "ours" and spec.name.startswith(("langchain:", "llamaindex:")):
            cls = (_LC_CLASSES if spec.name.startswith("langchain:") else _LI_CLASSES)[spec.dialect]
            if not hasattr(m, cls):
                return f"{mod} has no {cls} yet"
    return None
