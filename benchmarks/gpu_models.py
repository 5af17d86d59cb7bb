"""GPU timings for the model families: bare diffusers vs promptkit, same pipeline, seeds and steps, one run.

Cases (random weights at full size, built from the published configs; speed does not depend on
the weights' values):
  1. SDXL base 1024x1024, fp16, 30 steps;
  2. SD 1.5 512x512, fp16, 30 steps, with one ControlNet (canny) and one LoRA (rank 16).

Usage: python benchmarks/gpu_models.py [--repeats 3] [--steps 30]
Without a CUDA GPU it prints "skipped: no CUDA GPU" and exits 0.
NOTE: written without a GPU at hand; the CPU path (the skip) is what has been run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, cross_attention_dim=768,
                 block_out_channels=(320, 640, 1280, 1280), attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                   "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
SDXL_UNET = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, cross_attention_dim=2048,
                 block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20),
                 transformer_layers_per_block=(1, 2, 10), use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
           block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
              projection_dim=768, hidden_act="quick_gelu", vocab_size=49408, max_position_embeddings=77)
CLIP_BIGG = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
                 projection_dim=1280, hidden_act="gelu", vocab_size=49408, max_position_embeddings=77)


def build(kind: str, folder: Path):
    import torch
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline,
                           StableDiffusionXLPipeline, UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from promptkit.lint import load_tokenizer

    torch.manual_seed(0)
    tokenizer, _ = load_tokenizer(None)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    if kind == "sdxl":
        pipe = StableDiffusionXLPipeline(
            unet=UNet2DConditionModel(**SDXL_UNET), vae=AutoencoderKL(**VAE, sample_size=1024,
                                                                       scaling_factor=0.13025),
            text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L)), tokenizer=tokenizer,
            text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG)), tokenizer_2=tokenizer,
            scheduler=scheduler)
    else:
        pipe = StableDiffusionPipeline(
            unet=UNet2DConditionModel(**SD15_UNET), vae=AutoencoderKL(**VAE, sample_size=512),
            text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L)), tokenizer=tokenizer, scheduler=scheduler,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(str(folder), safe_serialization=True)
    return folder


def build_controlnet_and_lora(sd_folder: Path, work: Path):
    import torch
    from diffusers import ControlNetModel, StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(str(sd_folder / "unet"))
    controlnet = ControlNetModel.from_unet(unet)
    controlnet.to(torch.float16).save_pretrained(str(work / "controlnet"), safe_serialization=True)
    unet.add_adapter(LoraConfig(r=16, lora_alpha=16, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    StableDiffusionPipeline.save_lora_weights(str(work), weight_name="lora.safetensors",
                                              unet_lora_layers=get_peft_model_state_dict(unet))
    return work / "controlnet", work / "lora.safetensors"


def timed(fn, repeats: int) -> float:
    import torch

    fn()  # warm-up (cuDNN autotune, allocator)
    seconds = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("skipped: no CUDA GPU")
        return 0
    from PIL import Image

    from promptkit.engine import Engine, EngineOptions
    from promptkit.inputs import InputRequest, prepare_inputs
    from promptkit.generation import GenerationJob, run_job
    from promptkit.library import Library
    from promptkit.params import GenerationParams
    from promptkit.templates import Fields, PromptBuilder

    work = Path(tempfile.mkdtemp(prefix="promptkit-gpu-"))
    prompt = PromptBuilder().render(Fields(subject="a lighthouse on a cliff", style=["watercolor"]))
    library = Library(work / "library.db")
    row = library.get_prompt(library.save_prompt(prompt, name="bench"))
    photo = work / "photo.png"
    Image.effect_mandelbrot((512, 512), (-2, -1.5, 1, 1.5), 100).convert("RGB").save(photo)
    rows = []
    for kind in ("sdxl", "sd15"):
        folder = build(kind, work / kind)
        engine = Engine.get(str(folder), EngineOptions(device="cuda", dtype="float16"))
        request = InputRequest()
        size = 1024 if kind == "sdxl" else 512
        bare_kwargs = {}
        pipe = engine.pipe
        if kind == "sd15":
            cn_folder, lora_file = build_controlnet_and_lora(folder, work)
            request = InputRequest(controlnets=[str(cn_folder)], control_images=[str(photo)],
                                   control_modules=["canny"], loras=[f"{lora_file}:0.8"])
        prepared = prepare_inputs(request, row["positive"])
        extra = prepared.store(library)
        params = GenerationParams(steps=args.steps, cfg=7.0, sampler="Euler", width=size, height=size, extra=extra)
        job = GenerationJob(prompt=row, params=params, seeds=[1], batch_size=1)
        promptkit_s = timed(lambda: run_job(library, engine, job), args.repeats)
        # The bare call: the same pipeline object promptkit built (ControlNet, LoRA active), called directly.
        if kind == "sd15":
            from promptkit.inputs import resolve_inputs

            pipe = engine.pipeline_for("txt2img", [engine.controlnet(str(cn_folder))])
            bare_kwargs = {"image": resolve_inputs(library, extra).control_images[0],
                           "controlnet_conditioning_scale": 1.0}
        generator = lambda: [torch.Generator("cpu").manual_seed(1)]  # noqa: E731
        bare_s = timed(lambda: pipe(row["positive"], negative_prompt=row["negative"], num_inference_steps=args.steps,
                                    guidance_scale=7.0, width=size, height=size, generator=generator(),
                                    **bare_kwargs), args.repeats)
        rows.append((kind, size, bare_s, promptkit_s))
        del engine, pipe
        torch.cuda.empty_cache()
    print(f"device: {torch.cuda.get_device_name(0)}")
    print(f"{'case':<34}{'bare s':>10}{'promptkit s':>13}{'ratio':>8}")
    for kind, size, bare_s, promptkit_s in rows:
        label = "SDXL base fp16" if kind == "sdxl" else "SD 1.5 fp16 + ControlNet + LoRA"
        print(f"{label + f' {size}px':<34}{bare_s:>10.3f}{promptkit_s:>13.3f}{promptkit_s / bare_s:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
