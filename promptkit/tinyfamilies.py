"""Tiny random-weight stand-ins of the flow-matching families (SD 3.5, FLUX.1, FLUX.2 klein, Z-Image, Qwen-Image,
Chroma) for tests and offline use: `promptkit model tiny --kind flux`.

The configs follow diffusers' own tests (tests/pipelines/<family>/test_*.py `get_dummy_components`). Those tests
download their tokenizers from the hub; here every tokenizer is built locally: CLIP from the bundled vocabulary
(as the tiny SD pipeline), a T5-style Unigram and a Qwen-style byte-level BPE wrapped by transformers' own
classes (T5TokenizerFast, Qwen2TokenizerFast). Each pipeline is saved with `save_pretrained` and loads back
through the real loading code, offline. They draw noise, not pictures.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

FAMILY_KINDS = ("sd3", "flux", "flux2-klein", "zimage", "qwenimage", "chroma")
FAMILY_WHAT = {"sd3": "SD 3.5", "flux": "FLUX.1", "flux2-klein": "FLUX.2 klein (distilled)", "zimage": "Z-Image",
               "qwenimage": "Qwen-Image", "chroma": "Chroma"}

# Words the tiny T5 vocabulary holds whole; any other word is spelled out letter by letter.
_WORDS = ("a the of and in on with at to for from by is photo painting portrait of cat dog red blue green "
          "yellow black white lighthouse sea sky night day sunset forest mountain city street woman man girl boy "
          "old young small big bright dark light soft hard detailed cinematic style art oil watercolor sketch "
          "studio close up wide shot lens film grain colour color highly quality best masterpiece ugly blurry "
          "bad low worst extra fingers hands face eyes hair dress house tree river lake snow rain fog").split()
_CHAT_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
                  "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
_QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>")


# -- tokenizers, built here -------------------------------------------------------------


def t5_tokenizer():
    """A T5-style SentencePiece Unigram (pad 0, </s> 1, <unk> 2; ▁-prefixed pieces) as transformers' T5 class."""
    from transformers import T5TokenizerFast

    chars = [chr(c) for c in range(33, 127)]
    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(c, -6.0) for c in chars] + [("▁" + c, -5.0) for c in chars]
    vocab += [("▁" + w, -3.0) for w in dict.fromkeys(_WORDS) if len(w) > 1]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=512)


def qwen_tokenizer():
    """A Qwen-style byte-level BPE (GPT-2 byte mapping, a few merges, Qwen's chat markers) with a chat template."""
    from transformers import Qwen2TokenizerFast

    from .cliptoken import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    merges: list[tuple[str, str]] = []
    for word in dict.fromkeys(_WORDS):
        pieces = ["Ġ"] + list(word)  # Ġ: the byte-level space
        while len(pieces) > 1:
            left, right = pieces[0], pieces[1]
            merges.append((left, right))
            pieces = [left + right] + pieces[2:]
            vocab.setdefault(pieces[0], len(vocab))
    merges = list(dict.fromkeys(merges))
    tokenizer = Qwen2TokenizerFast(vocab=vocab, merges=merges, model_max_length=32768)
    tokenizer.add_special_tokens({"additional_special_tokens": list(_QWEN_SPECIALS[1:])})
    tokenizer.add_tokens([_QWEN_SPECIALS[0]], special_tokens=True)
    tokenizer.chat_template = _CHAT_TEMPLATE
    return tokenizer


def clip_tokenizer():
    from .lint import load_tokenizer

    return load_tokenizer(None)[0]  # the real CLIP vocabulary, bundled


def _clip_config(**overrides):
    from .tinymodel import _clip_config as clip_config

    return clip_config(hidden_act="gelu", projection_dim=32, **overrides)


def _t5_encoder(vocab_size: int):
    import torch
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    config = T5Config(vocab_size=vocab_size, d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2,
                      relative_attention_num_buckets=8, dropout_rate=0.0, feed_forward_proj="gated-gelu",
                      is_encoder_decoder=False, use_cache=False)
    return T5EncoderModel(config).eval()


def _vae(latent_channels: int = 1, **extra):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    config: dict[str, Any] = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,),
                                  layers_per_block=1, latent_channels=latent_channels, norm_num_groups=1,
                                  use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
                                  scaling_factor=1.5035)
    config.update(extra)
    return AutoencoderKL(**config)


def _qwen3(cls_name: str, vocab_size: int, layers: int = 2):
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.Qwen3Config(hidden_size=16, intermediate_size=16, num_hidden_layers=layers,
                                      num_attention_heads=2, num_key_value_heads=2, head_dim=8,
                                      vocab_size=vocab_size, max_position_embeddings=1024)
    return getattr(transformers, cls_name)(config).eval()


def _vocab_size(tokenizer) -> int:
    return (len(tokenizer) + 63) // 64 * 64


# -- the pipelines ----------------------------------------------------------------------


def build_sd3():
    """SD 3.5-shaped: CLIP-L + CLIP-G (77) and T5 (256), SD3 transformer, 4-channel VAE."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=4, num_layers=1,
                                        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
                                        joint_attention_dim=32, pooled_projection_dim=64, out_channels=4)
    torch.manual_seed(0)
    text_encoder = CLIPTextModelWithProjection(_clip_config())
    torch.manual_seed(1)
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config())
    t5 = t5_tokenizer()
    return StableDiffusion3Pipeline(
        # A two-level VAE (diffusers' test has one): 32 px are 16x16 latents, 256 image tokens, not 1024.
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(4, block_out_channels=(4, 4), down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2),
        text_encoder=text_encoder, tokenizer=clip_tokenizer(), text_encoder_2=text_encoder_2,
        tokenizer_2=clip_tokenizer(), text_encoder_3=_t5_encoder(_vocab_size(t5)), tokenizer_3=t5)


def build_flux():
    """FLUX.1-dev-shaped: CLIP-L (pooled) + T5 (512), embedded guidance."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], guidance_embeds=True)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_clip_config())
    t5 = t5_tokenizer()
    return FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True,
                                                                  base_shift=0.5, max_shift=1.15),
                        vae=_vae(1), text_encoder=text_encoder, tokenizer=clip_tokenizer(),
                        text_encoder_2=_t5_encoder(_vocab_size(t5)), tokenizer_2=t5, transformer=transformer)


def build_chroma():
    """Chroma-shaped: T5 (512) only, real CFG with a negative prompt."""
    import torch
    from diffusers import ChromaPipeline, ChromaTransformer2DModel, FlowMatchEulerDiscreteScheduler

    torch.manual_seed(0)
    transformer = ChromaTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                           attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                           axes_dims_rope=[4, 4, 8], approximator_hidden_dim=32,
                                           approximator_layers=1, approximator_num_channels=16)
    t5 = t5_tokenizer()
    return ChromaPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=_vae(1),
                          text_encoder=_t5_encoder(_vocab_size(t5)), tokenizer=t5, transformer=transformer)


def build_zimage():
    """Z-Image-shaped: Qwen3 (512), CFG with a negative prompt, 16-channel VAE."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel

    torch.manual_seed(0)
    transformer = ZImageTransformer2DModel(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32,
                                           n_layers=2, n_refiner_layers=1, n_heads=2, n_kv_heads=2, norm_eps=1e-5,
                                           qk_norm=True, cap_feat_dim=16, rope_theta=256.0, t_scale=1000.0,
                                           axes_dims=[8, 4, 4], axes_lens=[1024, 32, 32])
    with torch.no_grad():  # created with torch.empty: fixed, as diffusers' test does, so they hold no NaN
        transformer.x_pad_token.copy_(torch.ones_like(transformer.x_pad_token.data))
        transformer.cap_pad_token.copy_(torch.ones_like(transformer.cap_pad_token.data))
    vae = _vae(16, down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
               up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], block_out_channels=[32, 64],
               norm_num_groups=32, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=True,
               use_post_quant_conv=True)
    tokenizer = qwen_tokenizer()
    return ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
                          text_encoder=_qwen3("Qwen3Model", _vocab_size(tokenizer)), tokenizer=tokenizer,
                          transformer=transformer)


def build_flux2_klein():
    """FLUX.2 klein-shaped (distilled): Qwen3 (512; hidden states of layers 9, 18, 27 stacked), no negative."""
    import torch
    from diffusers import (AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline,
                           Flux2Transformer2DModel)

    torch.manual_seed(0)
    # joint_attention_dim 48: three stacked 16-wide hidden states (the pipeline's default layers 9, 18, 27).
    transformer = Flux2Transformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                          attention_head_dim=16, num_attention_heads=2, joint_attention_dim=48,
                                          timestep_guidance_channels=256, axes_dims_rope=[4, 4, 4, 4],
                                          guidance_embeds=False)
    torch.manual_seed(0)
    vae = AutoencoderKLFlux2(sample_size=32, in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
                             up_block_types=("UpDecoderBlock2D",), block_out_channels=(4,), layers_per_block=1,
                             latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False)
    tokenizer = qwen_tokenizer()
    return Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
                              text_encoder=_qwen3("Qwen3ForCausalLM", _vocab_size(tokenizer), layers=28),
                              tokenizer=tokenizer, transformer=transformer, is_distilled=True)


def build_qwenimage():
    """Qwen-Image-shaped: Qwen2.5-VL (512), true CFG 4 with a negative prompt, Qwen-Image VAE."""
    import torch
    from diffusers import (AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImagePipeline,
                           QwenImageTransformer2DModel)
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=4, num_layers=2,
                                              attention_head_dim=16, num_attention_heads=3, joint_attention_dim=16,
                                              guidance_embeds=False, axes_dims_rope=(8, 4, 4))
    torch.manual_seed(0)
    vae = AutoencoderKLQwenImage(base_dim=24, z_dim=4, dim_mult=[1, 2, 4], num_res_blocks=1,
                                 temperal_downsample=[False, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    tokenizer = qwen_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    torch.manual_seed(0)
    config = Qwen2_5_VLConfig(
        text_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 2, "vocab_size": _vocab_size(tokenizer),
                     "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                     "rope_theta": 1000000.0},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16, vocab_size=_vocab_size(tokenizer), vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"), vision_token_id=ids("<|image_pad|>"),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"))
    text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
    return QwenImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=vae,
                             text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer)


def build_flux_controlnet():
    """A FLUX.1 ControlNet (InstantX layout: no input hint block, the control image goes through the VAE) for the
    tiny FLUX.1 pipeline: 1 double and 1 single block, with random (not zero) output projections."""
    import torch
    from diffusers import FluxControlNetModel

    import warnings

    transformer = build_flux().transformer
    with warnings.catch_warnings():  # diffusers' own FluxPosEmbed deprecation, from inside FluxControlNetModel
        warnings.simplefilter("ignore", FutureWarning)
        controlnet = FluxControlNetModel.from_transformer(transformer, num_layers=1, num_single_layers=1,
                                                          attention_head_dim=16, num_attention_heads=2)
    torch.manual_seed(1)
    with torch.no_grad():
        # from_transformer zero-initialises these, so an untrained ControlNet would change nothing.
        for layer in [*controlnet.controlnet_blocks, *controlnet.controlnet_single_blocks,
                      controlnet.controlnet_x_embedder]:
            layer.weight.normal_(0, 0.5)
            layer.bias.normal_(0, 0.1)
    return controlnet


BUILDERS: dict[str, Callable[[], Any]] = {
    "sd3": build_sd3, "flux": build_flux, "flux2-klein": build_flux2_klein, "zimage": build_zimage,
    "qwenimage": build_qwenimage, "chroma": build_chroma,
}


def family_note(kind: str) -> str:
    return (f"random-weight tiny {FAMILY_WHAT[kind]} pipeline made by `promptkit model tiny --kind {kind}`: "
            "it draws noise, not pictures")


def write_tiny_family(path: str | Path, kind: str) -> Path:
    """Save the tiny pipeline of family KIND to the folder PATH and return it."""
    from .tinymodel import _quiet

    _quiet()
    folder = Path(path).expanduser()
    pipe = BUILDERS[kind]()
    pipe.save_pretrained(str(folder), safe_serialization=True)
    (folder / "README.txt").write_text(family_note(kind) + f" (kind {kind})\n", encoding="utf-8")
    return folder


def write_tiny_family_lora(path: str | Path, kind: str, rank: int = 4) -> Path:
    """A random LoRA on the attention layers of the tiny KIND pipeline's transformer, as one .safetensors file
    in diffusers' layout (`transformer.…lora_A.weight`), loadable with `load_lora_weights`."""
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from .tinymodel import _quiet

    _quiet()
    file = Path(path).expanduser().with_suffix(".safetensors")
    file.parent.mkdir(parents=True, exist_ok=True)
    pipe = BUILDERS[kind]()
    torch.manual_seed(2)
    pipe.transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                            target_modules=["to_q", "to_k", "to_v"]))
    type(pipe).save_lora_weights(str(file.parent), weight_name=file.name, safe_serialization=True,
                                 transformer_lora_layers=get_peft_model_state_dict(pipe.transformer))
    return file
