"""Tiny random-weight stand-ins (SD 1.x, SD 2.x, SDXL, inpainting, ControlNet, LoRA) for tests and offline use.

Each is built from configs (as diffusers' own tests build `get_dummy_components`), saved
with `save_pretrained` / `save_lora_weights` in safetensors, and loaded back through the
real loading code. They make noise, not pictures.
"""

from __future__ import annotations

import os

# transformers warns at import that torchvision is absent and falls back to PIL: expected here.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from pathlib import Path

TINY_NOTE = "random-weight tiny Stable Diffusion pipeline made by `promptkit model tiny`: it draws noise, not pictures"
TINY_WHAT = {"lora": "tiny LoRA", "controlnet": "tiny ControlNet", "sdxl-refiner": "tiny SDXL refiner pipeline",
             "inpaint": "tiny inpainting pipeline", "sdxl": "tiny SDXL pipeline", "sd2": "tiny SD 2.x pipeline"}
TINY_KINDS = ("sd", "sd2", "sdxl", "sdxl-refiner", "inpaint", "controlnet", "lora")
TINY_BASES = ("sd", "sdxl", "flux")  # what a tiny ControlNet or LoRA is made for (flux: a ControlNet only)
_BASE_LABEL = {"sd": "SD 1.x", "sdxl": "SDXL", "flux": "FLUX.1"}


def tiny_note(kind: str = "sd", base: str = "sd") -> str:
    """What `promptkit model tiny --kind KIND --for BASE` wrote, in words."""
    if kind not in TINY_WHAT:
        return TINY_NOTE
    what = TINY_WHAT[kind]
    if kind in ("lora", "controlnet"):
        what += f" for the tiny {_BASE_LABEL.get(base, 'SD 1.x')} pipeline"
    return f"random-weight {what} made by `promptkit model tiny`: it draws noise, not pictures"


def _quiet() -> None:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def _scheduler(prediction_type: str = "epsilon"):
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type)


def _vae():
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=[4, 8], in_channels=3, out_channels=3,
                         down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                         up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4,
                         norm_num_groups=2)


def _clip_config(**overrides):
    from transformers import CLIPTextConfig

    config = dict(bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, hidden_size=32, intermediate_size=37,
                  layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2, vocab_size=49408,
                  max_position_embeddings=77)
    config.update(overrides)
    return CLIPTextConfig(**config)


def _sd_unet(in_channels: int = 4, sd2: bool = False):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    extra = {"attention_head_dim": (2, 4), "use_linear_projection": True} if sd2 else {}
    return UNet2DConditionModel(block_out_channels=(4, 8), layers_per_block=1, sample_size=32,
                                in_channels=in_channels, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=2, **extra)


def build_tiny_pipeline(kind: str = "sd"):
    """The tiny pipeline of KIND: sd (SD 1.x), sd2 (SD 2.x, v-prediction), sdxl, inpaint (9-channel UNet)."""
    import torch
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline
    from transformers import CLIPTextModel

    from .lint import load_tokenizer

    if kind == "sdxl":
        return build_tiny_sdxl()
    if kind == "sdxl-refiner":
        return build_tiny_sdxl_refiner()
    unet = _sd_unet(in_channels=9 if kind == "inpaint" else 4, sd2=kind == "sd2")
    scheduler = _scheduler("v_prediction" if kind == "sd2" else "epsilon")
    vae = _vae()
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_clip_config(hidden_act="gelu", projection_dim=512) if kind == "sd2"
                                 else _clip_config())
    tokenizer, _ = load_tokenizer(None)  # the real CLIP vocabulary, bundled
    cls = StableDiffusionInpaintPipeline if kind == "inpaint" else StableDiffusionPipeline
    return cls(unet=unet, scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
               safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def _sdxl_unet_and_scheduler(projection_input_dim: int, cross_attention_dim: int):
    """The tiny SDXL-shaped UNet (base: 6 time ids, refiner: 5) and its Euler scheduler."""
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel

    unet = UNet2DConditionModel(
        block_out_channels=(2, 4), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=projection_input_dim, cross_attention_dim=cross_attention_dim,
        norm_num_groups=1,
    )
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                       beta_schedule="scaled_linear", timestep_spacing="leading")
    return unet, scheduler


def build_tiny_sdxl():
    """Tiny SDXL base, after diffusers' tests/pipelines/stable_diffusion_xl get_dummy_components."""
    import torch
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from .lint import load_tokenizer

    torch.manual_seed(0)
    unet, scheduler = _sdxl_unet_and_scheduler(projection_input_dim=80, cross_attention_dim=64)
    vae = _vae()
    config = _clip_config(hidden_act="gelu", projection_dim=32)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(config)
    torch.manual_seed(0)
    text_encoder_2 = CLIPTextModelWithProjection(config)
    tokenizer, _ = load_tokenizer(None)
    tokenizer_2, _ = load_tokenizer(None)
    return StableDiffusionXLPipeline(unet=unet, scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                                     tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
                                     force_zeros_for_empty_prompt=True)


def build_tiny_sdxl_refiner():
    """Tiny SDXL refiner: text_encoder_2 only, aesthetic-score conditioning (5 time ids, not 6)."""
    import torch
    from diffusers import StableDiffusionXLImg2ImgPipeline

    base = build_tiny_sdxl()
    torch.manual_seed(0)
    unet, scheduler = _sdxl_unet_and_scheduler(projection_input_dim=72, cross_attention_dim=32)
    return StableDiffusionXLImg2ImgPipeline(unet=unet, scheduler=scheduler, vae=base.vae, text_encoder=None,
                                            tokenizer=None, text_encoder_2=base.text_encoder_2,
                                            tokenizer_2=base.tokenizer_2, requires_aesthetics_score=True,
                                            force_zeros_for_empty_prompt=False)


def build_tiny_controlnet(base: str = "sd"):
    """A ControlNet for the tiny BASE pipeline, with random (not zero) output convolutions."""
    import torch
    from diffusers import ControlNetModel

    unet = build_tiny_sdxl().unet if base == "sdxl" else _sd_unet()
    # The conditioning embedding must downscale by the VAE's factor (2 for the 2-block tiny VAE).
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    torch.manual_seed(1)
    with torch.no_grad():
        # from_unet zero-initialises these, so an untrained ControlNet would change nothing.
        zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                      controlnet.controlnet_cond_embedding.conv_out]
        for conv in zero_convs:
            conv.weight.normal_(0, 0.5)
            conv.bias.normal_(0, 0.1)
    return controlnet


def write_tiny_lora(path: str | Path, base: str = "sd", rank: int = 4) -> Path:
    """A random LoRA for the tiny BASE pipeline, as one .safetensors file: the UNet's attention
    layers and the text encoders' (as most LoRAs trained with kohya's scripts have).

    The text-encoder layers are made with peft directly: transformers 5's own adapter code
    needs peft >= 0.22 (the engine loads them the same way; see engine.lora._peft_load_adapter).
    """
    import torch
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    file = Path(path).expanduser()
    if file.suffix != ".safetensors":
        file = file.with_suffix(".safetensors")
    file.parent.mkdir(parents=True, exist_ok=True)
    pipe = build_tiny_pipeline("sdxl" if base == "sdxl" else "sd")
    torch.manual_seed(2)
    # init_lora_weights=False: B is random too, so the LoRA changes the output.
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                        target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    pipe.unet.add_adapter(config)
    layers = {"unet_lora_layers": get_peft_model_state_dict(pipe.unet)}
    text_config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                             target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name, None)
        if encoder is not None:
            inject_adapter_in_model(text_config, encoder)
            layers[f"{name}_lora_layers"] = get_peft_model_state_dict(encoder)
    type(pipe).save_lora_weights(str(file.parent), weight_name=file.name, safe_serialization=True, **layers)
    return file


def write_tiny_pipeline(path: str | Path, kind: str = "sd", base: str = "sd") -> Path:
    """Save the tiny model of KIND to PATH (a folder; a .safetensors file for a LoRA) and return it."""
    if kind not in TINY_KINDS:
        from .errors import BadParameter

        raise BadParameter(f"`kind` must be one of {', '.join(TINY_KINDS)} but is {kind!r}")
    if kind == "lora" and base == "flux":
        from .errors import BadParameter

        raise BadParameter("`for` flux makes a tiny FLUX.1 ControlNet (--kind controlnet), not a LoRA")
    _quiet()
    if kind == "lora":
        return write_tiny_lora(path, base)
    folder = Path(path).expanduser()
    if kind == "controlnet" and base == "flux":
        from .tinyfamilies import build_flux_controlnet

        model = build_flux_controlnet()
    else:
        model = build_tiny_controlnet(base) if kind == "controlnet" else build_tiny_pipeline(kind)
    model.save_pretrained(str(folder), safe_serialization=True)
    (folder / "README.txt").write_text(tiny_note(kind, base) + f" (kind {kind})\n", encoding="utf-8")
    return folder
