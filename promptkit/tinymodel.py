"""A tiny random-weight Stable Diffusion pipeline for tests and the offline quick start.

It is built from configs (as diffusers' own tests build `get_dummy_components`), saved
with `save_pretrained` in safetensors, and loaded back through the real loading code.
It makes noise, not pictures.
"""

from __future__ import annotations

import os

# transformers warns at import that torchvision is absent and falls back to PIL: expected here.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from pathlib import Path

TINY_NOTE = "random-weight tiny Stable Diffusion pipeline made by `promptkit model tiny`: it draws noise, not pictures"


def build_tiny_pipeline():
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .lint import load_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=2,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=49408,
            max_position_embeddings=77,
        )
    )
    tokenizer, _ = load_tokenizer(None)  # the real CLIP vocabulary, bundled
    return StableDiffusionPipeline(
        unet=unet,
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def write_tiny_pipeline(path: str | Path) -> Path:
    """Save the tiny pipeline to PATH (a folder) in safetensors; return the folder."""
    folder = Path(path).expanduser()
    pipe = build_tiny_pipeline()
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    pipe.save_pretrained(str(folder), safe_serialization=True)
    (folder / "README.txt").write_text(TINY_NOTE + "\n", encoding="utf-8")
    return folder
