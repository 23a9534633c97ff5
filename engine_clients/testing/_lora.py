"""Tiny LoRA adapters for the scripted models, and servers that serve them or several models at once.

* :func:`scripted_lora_gguf` / :func:`scripted_lora_peft` - an adapter (``_build_lora.py``) that makes the
  scripted model answer ``" Hello WORD."`` (:func:`lora_answer`) instead of ``" Hello world."``: a GGUF
  LoRA for ``llama-server --lora``, a PEFT directory for ``vllm --enable-lora``. Cached under
  ``cache_root()/models``, named after the word and a hash of the builder and the base model's builder;
* :func:`start_llama_lora_server` - llama-server with adapters at a starting scale (``--lora-scaled``);
* :func:`start_vllm_lora_server` - vLLM with ``--enable-lora``, adapters as ``--lora-modules`` and runtime
  loading allowed (``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``);
* :func:`scripted_models_dir` / :func:`start_llama_router` - llama-server in router mode (``--models-dir``)
  over copies (symlinks) of the scripted GGUF under several names.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

from ._process import EngineServer
from ._process import _start
from .launcher import start_llama_server
from .launcher import start_vllm_server
from .provision import _GGUF_BUILDER
from .provision import _HF_BUILDER
from .provision import _TEMPLATE
from .provision import ProvisionError
from .provision import _fingerprint
from .provision import _locked
from .provision import _run
from .provision import _say
from .provision import cache_root
from .provision import ensure_llama_server
from .provision import llamacpp_python
from .provision import scripted_gguf
from .provision import scripted_hf_model

__all__ = [
    "LORA_WORDS",
    "lora_answer",
    "scripted_lora_gguf",
    "scripted_lora_peft",
    "scripted_models_dir",
    "start_llama_lora_server",
    "start_llama_router",
    "start_vllm_lora_server",
]

LORA_WORDS = ("LoRA", "Bye")
"""The words of the test adapters; the adapter of ``word`` is named ``word.lower()``."""
_LORA_BUILDER = Path(__file__).resolve().parent / "_build_lora.py"


def lora_answer(word: str) -> str:
    """What the scripted model answers plain chat with, the adapter of ``word`` applied."""
    return f" Hello {word}."


def scripted_lora_gguf(word: str = LORA_WORDS[0]) -> Path:
    """A GGUF LoRA for :func:`scripted_gguf` (``adapter.lora.task_name`` = ``word.lower()``, which is the
    name llama-server's ``/lora-adapters`` reports and ``adapter=`` takes), built in the llama.cpp
    environment with the ``gguf`` package."""
    base = scripted_gguf()
    fp = _fingerprint(_LORA_BUILDER, _GGUF_BUILDER, _TEMPLATE)
    target = cache_root() / "models" / f"scripted-lora-{word.lower()}-{fp}.gguf"
    if target.is_file():
        return target
    ensure_llama_server()
    with _locked("models"):
        if not target.is_file():
            _say(f"building LoRA GGUF {target}")
            _run([llamacpp_python(), _LORA_BUILDER, "gguf", base, target, word, word.lower()], prefix="lora")
            if not target.is_file():
                raise ProvisionError(f"{_LORA_BUILDER.name} did not write {target}")
    return target


def scripted_lora_peft(word: str = LORA_WORDS[0]) -> Path:
    """A PEFT LoRA directory for :func:`scripted_hf_model` (``target_modules: ["lm_head"]``), written by
    ``_build_lora.py`` with the standard library only."""
    from . import _build_lora

    base = scripted_hf_model()
    fp = _fingerprint(_LORA_BUILDER, _HF_BUILDER, _TEMPLATE)
    target = cache_root() / "models" / f"scripted-lora-peft-{word.lower()}-{fp}"
    if (target / "adapter_config.json").is_file():
        return target
    with _locked("models"):
        if not (target / "adapter_config.json").is_file():
            _say(f"building PEFT LoRA {target}")
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
            try:
                _build_lora.build_peft(str(base), str(tmp), word)
                tmp.chmod(0o755)
                tmp.rename(target)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
    return target


def start_llama_lora_server(
    words: Sequence[str] = LORA_WORDS,
    *,
    scale: float = 0.0,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 120.0,
) -> EngineServer:
    """llama-server with the scripted GGUF and one adapter per word (``--lora-scaled FILE:scale``, ids in
    the order given). With the default ``scale`` 0 a request without ``lora`` gets the plain " Hello world."
    and one that selects an adapter gets its :func:`lora_answer`."""
    args: list[str] = []
    for word in words:
        args += ["--lora-scaled", f"{scripted_lora_gguf(word)}:{scale:g}"]
    return start_llama_server(
        extra_args=[*args, *extra_args], env=env, log_path=log_path, ready_timeout=ready_timeout
    )


def start_vllm_lora_server(
    words: Sequence[str] = LORA_WORDS[:1],
    *,
    max_loras: int = 2,
    runtime_updates: bool = True,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 600.0,
) -> EngineServer:
    """vLLM (CPU) with the scripted HF model and ``--enable-lora``: each word's PEFT adapter as
    ``--lora-modules word.lower()=DIR``, ``--max-loras max_loras`` adapters per batch, ``--max-lora-rank 8``;
    ``runtime_updates`` sets ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` (``/v1/load_lora_adapter``)."""
    modules = [f"{word.lower()}={scripted_lora_peft(word)}" for word in words]
    args = ["--enable-lora", "--max-loras", str(max_loras), "--max-lora-rank", "8"]
    if modules:
        args += ["--lora-modules", *modules]
    full_env = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"} if runtime_updates else {}
    full_env.update(env or {})
    return start_vllm_server(
        extra_args=[*args, *extra_args], env=full_env, log_path=log_path, ready_timeout=ready_timeout
    )


def scripted_models_dir(directory: Path | str, names: Sequence[str] = ("alpha", "beta")) -> Path:
    """``directory`` with ``NAME.gguf`` for each name: symlinks to :func:`scripted_gguf` (a router-mode
    llama-server names each model after its file)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    model = scripted_gguf()
    for name in names:
        link = folder / f"{name}.gguf"
        if not link.exists():
            os.symlink(model, link)
    return folder


def start_llama_router(
    models_dir: Path | str,
    *,
    models_max: int = 1,
    autoload: bool = True,
    ctx_size: int = 4096,
    parallel: int = 2,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 120.0,
) -> EngineServer:
    """llama-server in router mode over ``models_dir`` (``--models-dir``, ``--models-max``, ``--jinja``);
    each model's instance gets ``--ctx-size ctx_size --parallel parallel``. ``server.model`` is "" (a router
    has no default model). Its instances are child processes in its process group: stopping the server (or
    its watchdog) stops them too."""
    exe = ensure_llama_server()

    def cmd(port: int) -> list[str]:
        args = [
            str(exe),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--models-dir", str(models_dir),
            "--models-max", str(models_max),
            "--jinja",
            "--ctx-size", str(ctx_size),
            "--parallel", str(parallel),
        ]  # fmt: skip
        if not autoload:
            args.append("--no-models-autoload")
        return args + list(extra_args)

    return _start(
        "llamacpp", cmd, model="", api_key=None, env=env, log_path=log_path, ready_timeout=ready_timeout
    )
