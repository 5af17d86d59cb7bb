"""Full-size FLUX.1-dev (or Z-Image) transformer on an NVIDIA GPU: seconds per 1024x1024 image, 28 steps, bf16,
bare diffusers against promptkit's flow-matching engine, with and without `torch.compile`.

The transformer has random weights (speed does not depend on their values) built from the published config
(FLUX.1-dev: 19 double + 38 single blocks, 24 heads of 128, 11.9B parameters; Z-Image: 30 layers of 3840,
6.15B), with the published VAE. The text encoders are cut to one layer of the real width (T5-XXL's 4096,
CLIP-L's 768; Qwen3's 2560 for Z-Image): text encoding runs once per image and is not what is measured. The
pipeline is built in memory on the GPU and handed to `FlowEngine` as if loaded, so both paths call the same
weights. Without a CUDA GPU the script prints "skipped: no GPU" and exits 0.

Usage: python benchmarks/flux_gpu.py [--model flux|zimage] [--steps 28] [--size 1024] [--repeats 2]
       [--no-compile] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

FLUX_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                axes_dims_rope=[16, 56, 56])
FLUX_VAE = dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
                layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, use_quant_conv=False,
                use_post_quant_conv=False, scaling_factor=0.3611, shift_factor=0.1159)
ZIMAGE = dict(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=3840, n_layers=30,
              n_refiner_layers=2, n_heads=30, n_kv_heads=30, norm_eps=1e-5, qk_norm=True, cap_feat_dim=2560,
              rope_theta=256.0, t_scale=1000.0, axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512])


def build_pipeline(kind: str):
    """The random-weight pipeline of KIND on the GPU in bf16 (constructed there: no CPU init of 12B weights)."""
    import torch
    import transformers
    from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel,
                           ZImagePipeline, ZImageTransformer2DModel)

    from promptkit.tinyfamilies import clip_tokenizer, qwen_tokenizer, t5_tokenizer

    torch.manual_seed(0)
    with torch.device("cuda"):
        torch.set_default_dtype(torch.bfloat16)
        try:
            vae = AutoencoderKL(**FLUX_VAE)
            if kind == "zimage":
                transformer = ZImageTransformer2DModel(**ZIMAGE)
                tokenizer = qwen_tokenizer()
                encoder = transformers.Qwen3Model(transformers.Qwen3Config(
                    hidden_size=2560, intermediate_size=9728, num_hidden_layers=2, num_attention_heads=32,
                    num_key_value_heads=8, head_dim=128, vocab_size=(len(tokenizer) + 63) // 64 * 64))
                return ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
                                      text_encoder=encoder, tokenizer=tokenizer, transformer=transformer)
            transformer = FluxTransformer2DModel(**FLUX_DEV)
            t5 = t5_tokenizer()
            clip = transformers.CLIPTextModel(transformers.CLIPTextConfig(
                hidden_size=768, intermediate_size=3072, num_hidden_layers=1, num_attention_heads=12,
                vocab_size=49408, max_position_embeddings=77, projection_dim=768))
            t5_encoder = transformers.T5EncoderModel(transformers.T5Config(
                vocab_size=(len(t5) + 63) // 64 * 64, d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=1,
                feed_forward_proj="gated-gelu", is_encoder_decoder=False))
            scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                        max_shift=1.15, base_image_seq_len=256,
                                                        max_image_seq_len=4096)
            return FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=clip_tokenizer(),
                                text_encoder_2=t5_encoder, tokenizer_2=t5, transformer=transformer)
        finally:
            torch.set_default_dtype(torch.float32)


def engine_for(pipe, kind: str):
    """promptkit's FlowEngine around PIPE (loading is what `load_flow_pipeline` would have done)."""
    from promptkit.engine import EngineOptions, flow

    original = flow.load_flow_pipeline
    flow.load_flow_pipeline = lambda model, options, dtype: pipe
    try:
        return flow.FlowEngine(f"random-{kind}", EngineOptions(device="cuda", dtype="bfloat16"))
    finally:
        flow.load_flow_pipeline = original


def timed(run, repeats: int) -> float:
    import torch

    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        run()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def measure(kind: str, steps: int, size: int, repeats: int, compile_too: bool) -> list[dict]:
    import torch

    from promptkit.params import GenerationParams

    pipe = build_pipeline(kind)
    pipe.set_progress_bar_config(disable=True)
    engine = engine_for(pipe, kind)
    guidance = 3.5 if kind == "flux" else 5.0
    prompt = "a lighthouse on a cliff at dusk, oil painting"
    params = GenerationParams(steps=steps, cfg=guidance, width=size, height=size, sampler="Euler")

    def bare():
        pipe(prompt=prompt, height=size, width=size, num_inference_steps=steps, guidance_scale=guidance,
             generator=torch.Generator("cpu").manual_seed(0), max_sequence_length=512)

    def promptkit():
        engine.run_batch(prompt, "", [0], params)

    rows = []
    for compiled in ([False, True] if compile_too else [False]):
        if compiled:
            pipe.transformer = torch.compile(pipe.transformer)
        bare(), promptkit()  # warm-up (and compilation)
        for name, run in (("bare diffusers", bare), ("promptkit", promptkit)):
            seconds = timed(run, repeats)
            rows.append({"path": name, "compile": compiled, "seconds": round(seconds, 3),
                         "it/s": round(steps / seconds, 3)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("flux", "zimage"), default="flux")
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("skipped: no GPU")
        return 0
    rows = measure(args.model, args.steps, args.size, args.repeats, not args.no_compile)
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"{args.model} {args.size}x{args.size} bf16, {args.steps} steps, {torch.cuda.get_device_name()}")
        for row in rows:
            print(f"  {row['path']:<15} compile={str(row['compile']):<5} {row['seconds']:>8.2f} s  {row['it/s']:.2f} it/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
