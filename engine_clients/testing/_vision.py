"""Tiny vision-language models for the real-engine tests, provisioned and served (see ``_build_vision.py``).

* :func:`vision_gguf` - ``(model.gguf, mmproj.gguf)`` for ``llama-server --mmproj``: the scripted tiny GGUF
  plus a LLaVA-1.5 style projector (random CLIP ViT, image 32x32, patch 8, MLP projector), written in the
  llama.cpp environment with the ``gguf`` package. Each image adds :data:`VISION_IMAGE_TOKENS` (16) prompt
  tokens;
* :func:`vision_hf_model` - an ``Idefics3ForConditionalGeneration`` directory for vLLM: the scripted tiny
  Llama, a random SigLIP-style ViT (image 64x64, patch 8, pixel-shuffle connector), an Idefics3 processor,
  built in vLLM's environment. Each image adds :data:`VLLM_VISION_IMAGE_TOKENS` (20) prompt tokens (vLLM 0.32
  does not serve the Llava architecture without torchvision, see ``_build_vision.py``);
* :func:`start_llama_vision_server` / :func:`start_vllm_vision_server` - start them.

Greedy output stays the scripted `` Hello world.`` with or without images. Both are cached under
``cache_root()/models``, named after a hash of their builder scripts and chat template.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

from .launcher import EngineServer
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
from .provision import build_hf_dir
from .provision import cache_root
from .provision import ensure_llama_server
from .provision import llamacpp_python
from .provision import scripted_gguf
from .provision import scripted_hf_model

__all__ = [
    "VISION_IMAGE_TOKENS",
    "VISION_MODEL_NAME",
    "VLLM_VISION_IMAGE_TOKENS",
    "start_llama_vision_server",
    "start_vllm_vision_server",
    "vision_gguf",
    "vision_hf_model",
]

VISION_MODEL_NAME = "scripted-vision"
VISION_IMAGE_TOKENS = 16  # llama.cpp, prompt tokens per image: (32 / 8) ** 2 patches, the class token dropped
# vLLM, prompt tokens per image: <fake_token_around_image><global-img>, (64 / 8) ** 2 / 2 ** 2 = 16 x <image>,
# <fake_token_around_image>, and the "\n" vLLM puts after each image placeholder of a chat message
VLLM_VISION_IMAGE_TOKENS = 20
_VISION_BUILDER = Path(__file__).resolve().parent / "_build_vision.py"


def vision_gguf() -> tuple[Path, Path]:
    """Return ``(model_path, mmproj_path)`` for llama-server, building the projector if needed.

    The model is :func:`scripted_gguf`; the projector (``clip.projector_type = mlp``, about 2.5 MB) is written
    by ``_build_vision.py`` with the ``gguf`` package of the llama.cpp environment.
    """
    model = scripted_gguf()
    fp = _fingerprint(_VISION_BUILDER, _GGUF_BUILDER, _TEMPLATE)
    target = cache_root() / "models" / f"scripted-vision-mmproj-{fp}.gguf"
    if target.is_file():
        return model, target
    ensure_llama_server()
    with _locked("models"):
        if not target.is_file():
            _say(f"building vision projector GGUF {target}")
            _run([llamacpp_python(), _VISION_BUILDER, "mmproj", model, target], prefix="vision")
            if not target.is_file():
                raise ProvisionError(f"{_VISION_BUILDER.name} did not write {target}")
    return model, target


def vision_hf_model() -> Path:
    """Return a tiny ``Idefics3ForConditionalGeneration`` directory for vLLM, building it if needed.

    Built from :func:`scripted_hf_model` (the language model) by ``_build_vision.py`` in vLLM's environment.
    """
    text_dir = scripted_hf_model()
    fp = _fingerprint(_VISION_BUILDER, _HF_BUILDER, _TEMPLATE)
    target = cache_root() / "models" / f"scripted-vision-hf-{fp}"
    return build_hf_dir(
        target, lambda tmp: [_VISION_BUILDER, "hf", text_dir, tmp], what="vision HF model", prefix="vision"
    )


def start_llama_vision_server(
    *,
    model_name: str = VISION_MODEL_NAME,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 120.0,
) -> EngineServer:
    """llama-server with :func:`vision_gguf` (``--mmproj FILE --jinja``); ``/props`` reports
    ``modalities: {"vision": true, ...}`` and chat accepts ``image_url`` parts (data: URLs)."""
    model, mmproj = vision_gguf()
    return start_llama_server(
        model,
        model_name=model_name,
        extra_args=["--mmproj", str(mmproj), *extra_args],
        env=env,
        log_path=log_path,
        ready_timeout=ready_timeout,
    )


def start_vllm_vision_server(
    *,
    served_model_name: str = VISION_MODEL_NAME,
    max_model_len: int = 1024,
    images_per_prompt: int = 2,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 900.0,
) -> EngineServer:
    """vLLM (CPU) with :func:`vision_hf_model`, at most ``images_per_prompt`` images per request
    (``--limit-mm-per-prompt``), no tool parser. It starts slower than the text model (multimodal
    profiling): about 3 minutes on 2 busy cores, hence the longer ``ready_timeout``."""
    return start_vllm_server(
        vision_hf_model(),
        served_model_name=served_model_name,
        max_model_len=max_model_len,
        tool_call_parser=None,
        extra_args=["--limit-mm-per-prompt", f'{{"image": {images_per_prompt}}}', *extra_args],
        env=env,
        log_path=log_path,
        ready_timeout=ready_timeout,
    )
