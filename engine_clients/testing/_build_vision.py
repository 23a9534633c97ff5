"""Build tiny *vision* models for the real-engine tests (standalone script; no file is downloaded).

Two modes, one per engine::

    python _build_vision.py mmproj TEXT.gguf OUT.gguf          # llama.cpp environment (gguf, numpy)
    python _build_vision.py hf SCRIPTED_HF_DIR OUT_DIR          # vLLM environment (torch, transformers)

Both put a small random vision encoder in front of the *scripted* text model (``_build_gguf.py`` /
``_build_hf.py``), whose attention and FFN weights are zero: the image embeddings reach the prompt (and the
usage counts) but do not change what it writes. Greedy output is `` Hello world.`` then EOS, with or
without images.

``mmproj`` - LLaVA-1.5 style, for ``llama-server -m TEXT.gguf --mmproj OUT.gguf``: a multimodal projector GGUF
(``general.architecture = clip``, ``clip.projector_type = mlp``) written with the ``gguf`` package:

* CLIP ViT, image 32x32, patch 8 (16 patches + class token), hidden 128, 2 heads (head_dim 64), FFN 256
  (quick_gelu), 2 layers; the features come from the second-to-last layer (LLaVA's default), so one layer
  runs. Seeded random weights (numpy, seed 0), small enough that every activation stays finite;
* projector Linear(128, n_text) -> GELU -> Linear(n_text, n_text), n_text read from TEXT.gguf's
  ``embedding_length`` (llama.cpp checks that the two widths match);
* every image becomes 16 embeddings (the class token is dropped): 16 more prompt tokens, no marker tokens.

``hf`` - Idefics3 (SmolVLM) style, for vLLM: an ``Idefics3ForConditionalGeneration`` directory. (vLLM 0.32's
Llava module imports transformers' Pixtral image processor, which needs torchvision, and torchvision from
PyPI does not load with CPU torch; vLLM's Idefics3 module imports without it.)

* SigLIP-style ViT, image 64x64, patch 8 (64 patches), hidden 128, 2 heads, FFN 256, 1 layer, transformers'
  random init (torch seed 0); connector: pixel shuffle (scale factor 2) + Linear(512, 128), no bias;
* the scripted tiny Llama from SCRIPTED_HF_DIR as the language model, its tokenizer plus the special tokens
  ``<fake_token_around_image>``, ``<image>``, ``<end_of_utterance>`` and ``<global-img>``;
* an ``Idefics3Processor`` (PIL image processor, image splitting off, every image resized to 64x64) with
  ``image_seq_len`` 16: an image becomes ``<fake_token_around_image><global-img>`` + 16 x ``<image>`` +
  ``<fake_token_around_image>``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

IMAGE_SIZE = 32
PATCH_SIZE = 8
N_PATCHES = (IMAGE_SIZE // PATCH_SIZE) ** 2  # image tokens per image
V_HIDDEN = 128
V_HEADS = 2
V_FF = 256  # != V_HIDDEN: clip.cpp swaps ffn_up/ffn_down of old llava files when ffn_down's input is n_embd
V_LAYERS = 2
V_EPS = 1e-5
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]  # CLIP's
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGE_TOKEN = "<image>"
SEED = 0


def vision_tower() -> dict[str, np.ndarray]:
    """The CLIP vision tower, with transformers' parameter names (``vision_model.`` prefix left out)."""
    rng = np.random.default_rng(SEED)

    def rand(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w: dict[str, np.ndarray] = {
        "embeddings.class_embedding": rand(V_HIDDEN),
        "embeddings.patch_embedding.weight": rand(V_HIDDEN, 3, PATCH_SIZE, PATCH_SIZE),
        "embeddings.position_embedding.weight": rand(N_PATCHES + 1, V_HIDDEN),
        "pre_layrnorm.weight": np.ones(V_HIDDEN, np.float32),
        "pre_layrnorm.bias": np.zeros(V_HIDDEN, np.float32),
        "post_layernorm.weight": np.ones(V_HIDDEN, np.float32),
        "post_layernorm.bias": np.zeros(V_HIDDEN, np.float32),
    }
    for i in range(V_LAYERS):
        p = f"encoder.layers.{i}."
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"]:
            w[p + f"self_attn.{proj}.weight"] = rand(V_HIDDEN, V_HIDDEN)
            w[p + f"self_attn.{proj}.bias"] = rand(V_HIDDEN)
        for norm in ["layer_norm1", "layer_norm2"]:
            w[p + f"{norm}.weight"] = np.ones(V_HIDDEN, np.float32)
            w[p + f"{norm}.bias"] = np.zeros(V_HIDDEN, np.float32)
        w[p + "mlp.fc1.weight"] = rand(V_FF, V_HIDDEN)
        w[p + "mlp.fc1.bias"] = rand(V_FF)
        w[p + "mlp.fc2.weight"] = rand(V_HIDDEN, V_FF)
        w[p + "mlp.fc2.bias"] = rand(V_HIDDEN)
    return w


def projector(n_text: int) -> dict[str, np.ndarray]:
    """LLaVA's MLP projector (``multi_modal_projector.`` prefix left out) into a text model n_text wide."""
    rng = np.random.default_rng(SEED + 1)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    return {
        "linear_1.weight": rand(n_text, V_HIDDEN),
        "linear_1.bias": rand(n_text),
        "linear_2.weight": rand(n_text, n_text),
        "linear_2.bias": rand(n_text),
    }


# --- llama.cpp: the mmproj GGUF -----------------------------------------------------------------------------


def _gguf_name(hf: str) -> str | None:
    """clip.cpp's tensor name for a vision-tower parameter; None for those it does not use."""
    if hf.startswith("post_layernorm."):
        return None  # LLaVA takes the features before the final norm
    fixed = {
        "embeddings.class_embedding": "v.class_embd",
        "embeddings.patch_embedding.weight": "v.patch_embd.weight",
        "embeddings.position_embedding.weight": "v.position_embd.weight",
        "pre_layrnorm.weight": "v.pre_ln.weight",
        "pre_layrnorm.bias": "v.pre_ln.bias",
    }
    if hf in fixed:
        return fixed[hf]
    _, _, i, *rest = hf.split(".")  # encoder.layers.<i>.<module...>.<weight|bias>
    module, kind = ".".join(rest[:-1]), rest[-1]
    names = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.out_proj": "attn_out",
        "layer_norm1": "ln1",
        "layer_norm2": "ln2",
        "mlp.fc1": "ffn_up",
        "mlp.fc2": "ffn_down",
    }
    return f"v.blk.{i}.{names[module]}.{kind}"


def build_mmproj(text_gguf: str, out_path: str) -> None:
    import gguf

    reader = gguf.GGUFReader(text_gguf)
    arch = str(bytes(reader.fields["general.architecture"].parts[-1]), "utf-8")
    field = reader.fields[f"{arch}.embedding_length"]
    n_text = int(field.parts[field.data[0]][0])

    w = gguf.GGUFWriter(out_path, "clip")
    w.add_type("mmproj")
    w.add_name("scripted-vision-mmproj")
    w.add_description("tiny random CLIP encoder + LLaVA MLP projector (engine_clients.testing)")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_text_encoder", False)
    w.add_bool("clip.has_llava_projector", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_bool("clip.use_gelu", False)  # quick_gelu, as in CLIP
    w.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    w.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    w.add_uint32("clip.vision.embedding_length", V_HIDDEN)
    w.add_uint32("clip.vision.feed_forward_length", V_FF)
    w.add_uint32("clip.vision.block_count", V_LAYERS)
    w.add_uint32("clip.vision.attention.head_count", V_HEADS)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", V_EPS)
    w.add_uint32("clip.vision.projection_dim", n_text)
    w.add_array("clip.vision.image_mean", IMAGE_MEAN)
    w.add_array("clip.vision.image_std", IMAGE_STD)
    for hf, data in vision_tower().items():
        name = _gguf_name(hf)
        if name is not None:
            w.add_tensor(name, data)
    for hf, data in projector(n_text).items():
        layer, kind = hf.split(".")
        w.add_tensor(f"mm.{0 if layer == 'linear_1' else 2}.{kind}", data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --- vLLM: an Idefics3ForConditionalGeneration directory ----------------------------------------------------

HF_IMAGE_SIZE = 64
HF_SCALE_FACTOR = 2
HF_IMAGE_SEQ_LEN = (HF_IMAGE_SIZE // PATCH_SIZE) ** 2 // HF_SCALE_FACTOR**2  # 16
HF_IMAGE_TOKENS = ["<fake_token_around_image>", IMAGE_TOKEN, "<end_of_utterance>", "<global-img>"]


def build_hf(text_dir: str, out_dir: str) -> None:
    import torch
    from transformers import AutoTokenizer
    from transformers import Idefics3Config
    from transformers import Idefics3ForConditionalGeneration
    from transformers import Idefics3ImageProcessor
    from transformers import Idefics3Processor
    from transformers import LlamaForCausalLM
    from transformers.models.idefics3 import Idefics3VisionConfig

    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(text_dir)
    chat_template = tokenizer.chat_template
    text = LlamaForCausalLM.from_pretrained(text_dir, dtype=torch.float32)
    old_vocab = text.config.vocab_size
    tokenizer.add_special_tokens({"additional_special_tokens": HF_IMAGE_TOKENS})
    ids = tokenizer.convert_tokens_to_ids(HF_IMAGE_TOKENS)
    assert min(ids) >= old_vocab, (ids, old_vocab)
    text_config = text.config
    text_config.vocab_size = len(tokenizer)

    vision_config = Idefics3VisionConfig(
        hidden_size=V_HIDDEN,
        intermediate_size=V_FF,
        num_hidden_layers=1,
        num_attention_heads=V_HEADS,
        image_size=HF_IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        layer_norm_eps=V_EPS,
    )
    config = Idefics3Config(
        vision_config=vision_config.to_dict(),
        text_config=text_config.to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        scale_factor=HF_SCALE_FACTOR,
        pad_token_id=text_config.pad_token_id,
        tie_word_embeddings=False,
    )
    model = Idefics3ForConditionalGeneration(config).to(torch.float32)

    text_state = text.state_dict()
    state = model.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            key = _text_key(name)
            if key is None:
                continue  # vision tower and connector keep their random init
            src = text_state[key]
            tensor.zero_()  # embed_tokens / lm_head have rows for the new tokens: zero, never chosen
            tensor[: src.shape[0]] = src
    model.load_state_dict(state, strict=True)
    model.save_pretrained(out_dir, safe_serialization=True)

    image_processor = Idefics3ImageProcessor(
        do_resize=True,
        size={"longest_edge": HF_IMAGE_SIZE},
        do_image_splitting=False,
        max_image_size={"longest_edge": HF_IMAGE_SIZE},
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_pad=True,
        do_convert_rgb=True,
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=HF_IMAGE_SEQ_LEN,
        chat_template=chat_template,
    )
    processor.save_pretrained(out_dir)


def _text_key(name: str) -> str | None:
    """The scripted Llama's name for an Idefics3 language-model parameter; None for vision/connector ones."""
    if name.startswith("model.text_model."):
        return "model." + name[len("model.text_model.") :]
    if name == "lm_head.weight":
        return name
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in {"mmproj", "hf"}:
        print(f"usage: {argv[0]} mmproj TEXT.gguf OUT.gguf | hf SCRIPTED_HF_DIR OUT_DIR", file=sys.stderr)
        return 2
    if argv[1] == "mmproj":
        tmp = argv[3] + ".tmp"
        build_mmproj(argv[2], tmp)
        os.replace(tmp, argv[3])
    else:
        build_hf(argv[2], argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
