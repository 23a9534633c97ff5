"""Start real engine servers on 127.0.0.1 for tests and local experiments.

>>> from engine_clients.testing import start_llama_server
>>> with start_llama_server() as server:          # scripted tiny GGUF, provisioned on first use
...     httpx.post(f"{server.base_url}/v1/chat/completions", json={...})

Each server binds 127.0.0.1 on a free port, writes its stdout/stderr to ``server.log_path`` and is stopped
when the ``with`` block ends (SIGTERM to its process group, then SIGKILL), or at interpreter exit at the
latest. Servers never outlive the Python process that started them, however it ends (``kill -9`` included):
a small watchdog process per server (``_watchdog.py``) holds the read end of a pipe whose write end only
this process has; when this process dies the pipe closes and the watchdog stops the server's whole process
group (SIGTERM, then SIGKILL after 5 s), which takes vLLM's engine-core children with it.
Start-up failures raise :class:`EngineStartError` with the last lines of the server's log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

from ._process import EngineServer
from ._process import EngineStartError
from ._process import _start
from .provision import chat_template_path
from .provision import ensure_llama_server
from .provision import ensure_vllm
from .provision import scripted_gguf
from .provision import scripted_hf_model

__all__ = [
    "DEFAULT_CONTEXT",
    "DEFAULT_MODEL_NAME",
    "EngineServer",
    "EngineStartError",
    "start_llama_server",
    "start_vllm_server",
]


DEFAULT_MODEL_NAME = "scripted-tiny"
DEFAULT_CONTEXT = 8192  # tokens per request: llama-server's context per slot, vLLM's max_model_len
# the thinking template's kwargs on a vLLM thinking server: plain prompts unless a request asks for thinking
_VLLM_THINKING_DEFAULTS = {"enable_thinking": False, "plain_without_thinking": True}


def start_llama_server(
    model_path: Path | str | None = None,
    *,
    model_name: str | None = None,
    ctx_size: int | None = None,
    parallel: int = 4,
    ctx_per_slot: int = DEFAULT_CONTEXT,
    api_key: str | None = None,
    thinking: bool = False,
    reasoning_format: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 120.0,
    binary: Path | str | None = None,
) -> EngineServer:
    """Start llama.cpp's ``llama-server``; wait until ``/health`` answers 200 (it answers 503 while loading).

    ``model_path`` defaults to the scripted tiny GGUF (:func:`scripted_gguf`); ``binary`` to the provisioned
    one (:func:`ensure_llama_server`, which also restores its shared-library links). The server runs with
    ``--jinja``, ``--parallel parallel`` slots sharing ``--ctx-size ctx_size`` tokens (default
    ``parallel * ctx_per_slot``: 4 slots of 8,192 tokens, each request gets 8,192) and ``--alias model_name``
    (default: "scripted-tiny" for the scripted model, else the file name), plus ``extra_args``.

    ``thinking=True`` serves the thinking chat template (``--chat-template-file``, see
    :func:`chat_template_path`): the scripted model then answers ``<think>`` (in the prompt) ``"\nThe user
    says hello.\n</think>\n Hello world."``, and ``chat_template_kwargs: {"enable_thinking": false}`` turns
    the thinking off. ``reasoning_format`` is passed as ``--reasoning-format`` (``deepseek``: the thinking
    goes to ``reasoning_content``; ``none``: it stays in ``content``); None keeps the server's default.
    """
    exe = Path(binary) if binary is not None else ensure_llama_server()
    if model_path is None:
        gguf = scripted_gguf()
        name = model_name or DEFAULT_MODEL_NAME
    else:
        gguf = Path(model_path)
        name = model_name or gguf.name

    def cmd(port: int) -> list[str]:
        args = [
            str(exe),
            "--host", "127.0.0.1",
            "--port", str(port),
            "-m", str(gguf),
            "--alias", name,
            "--jinja",
            "--ctx-size", str(ctx_size if ctx_size is not None else parallel * ctx_per_slot),
            "--parallel", str(parallel),
        ]  # fmt: skip
        if thinking:
            args += ["--chat-template-file", str(chat_template_path(thinking=True))]
        if reasoning_format is not None:
            args += ["--reasoning-format", reasoning_format]
        if api_key:
            args += ["--api-key", api_key]
        return args + list(extra_args)

    return _start(
        "llamacpp",
        cmd,
        model=name,
        api_key=api_key,
        env=env,
        log_path=log_path,
        ready_timeout=ready_timeout,
    )


def start_vllm_server(
    model_dir: Path | str | None = None,
    *,
    served_model_name: str = DEFAULT_MODEL_NAME,
    max_model_len: int = DEFAULT_CONTEXT,
    api_key: str | None = None,
    tool_call_parser: str | None = "hermes",
    reasoning_parser: str | None = None,
    thinking: bool = False,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 300.0,
    python: Path | str | None = None,
) -> EngineServer:
    """Start vLLM's OpenAI-compatible server (CPU build) and wait until ``/health`` answers 200.

    ``model_dir`` defaults to the scripted tiny HF model (:func:`scripted_hf_model`); ``python`` to the
    provisioned vLLM environment (:func:`ensure_vllm`). Runs ``python -m vllm.entrypoints.openai.api_server``
    with ``--dtype float32 --enforce-eager --max-model-len max_model_len``, auto tool choice with
    ``tool_call_parser`` (None disables it), offline (``HF_HUB_OFFLINE=1``) and a 1 GiB KV cache
    (``VLLM_CPU_KVCACHE_SPACE=1``); ``env`` and ``extra_args`` are added last. vLLM refuses connections
    until it is ready; it takes 35-60 s to start on 2 cores. On CPU it binds its worker to all cores but
    one (reserved for the API process) and runs one torch thread per bound core: 1 thread on 2 cores.
    Tools without ``"strict": true`` get tool calls whose arguments vLLM 0.32 does not constrain to the
    schema (pass ``extra_args=["--tool-strict-level", "parameter"]`` to constrain all of them).

    ``thinking=True`` makes it a reasoning server that still answers plainly by default: the thinking chat
    template (``--chat-template``, see :func:`chat_template_path`), ``--reasoning-parser reasoning_parser``
    (default ``qwen3``) and ``--default-chat-template-kwargs '{"enable_thinking": false,
    "plain_without_thinking": true}'``. Requests without ``chat_template_kwargs`` get exactly the plain prompt
    and answer (content " Hello world."); ``chat_template_kwargs: {"enable_thinking": true}`` (or a
    ``reasoning_effort`` other than "none") opens ``<think>`` and the answer comes back split into
    ``message.reasoning`` ("\nThe user says hello.\n") and ``content``. ``reasoning_parser`` alone adds just
    the parser flag.
    """
    exe = Path(python) if python is not None else ensure_vllm()
    if thinking and reasoning_parser is None:
        reasoning_parser = "qwen3"
    model = Path(model_dir) if model_dir is not None else scripted_hf_model()

    def cmd(port: int) -> list[str]:
        args = [
            str(exe), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model),
            "--served-model-name", served_model_name,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--dtype", "float32",
            "--enforce-eager",
            # usage.prompt_tokens_details.cached_tokens and per-request ``metrics`` (timings) on answers
            "--enable-prompt-tokens-details",
            "--enable-per-request-metrics",
            "--max-model-len", str(max_model_len),
        ]  # fmt: skip
        if tool_call_parser:
            args += ["--enable-auto-tool-choice", "--tool-call-parser", tool_call_parser]
        if reasoning_parser:
            args += ["--reasoning-parser", reasoning_parser]
        if thinking:
            args += [
                "--chat-template", str(chat_template_path(thinking=True)),
                "--default-chat-template-kwargs", json.dumps(_VLLM_THINKING_DEFAULTS),
            ]  # fmt: skip
        if api_key:
            args += ["--api-key", api_key]
        return args + list(extra_args)

    full_env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        **(env or {}),
    }
    return _start(
        "vllm",
        cmd,
        model=served_model_name,
        api_key=api_key,
        env=full_env,
        log_path=log_path,
        ready_timeout=ready_timeout,
    )
