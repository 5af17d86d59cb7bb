"""Full Stable Diffusion 1.5 size on an NVIDIA GPU: it/s and images/s, bare diffusers vs promptkit.

The pipeline has random weights (speed does not depend on their values), built from SD 1.5's
published configs: UNet 859.5M, VAE 83.7M and CLIP ViT-L/14 text encoder 123.1M parameters,
with promptkit's bundled CLIP vocabulary as its tokenizer. It is saved in fp16 safetensors
and loaded back through promptkit's `Engine`, the way a real model is. 512x512, 25 steps,
batch 1, 4 and 8; first with SDPA attention, then with `torch.compile` and channels_last.
In each setting one loaded pipeline serves all three paths, in alternating order:

- bare: `pipe(...)` called directly, as a diffusers user would;
- `Engine.run_batch`: promptkit's generation call (PIL images back);
- `run_job`: `promptkit generate`'s whole path (PNG encoding, sha256, files, library rows).

Denoising it/s comes from an extra bare call that synchronises the GPU at each step's end.
Without a CUDA GPU the script prints "skipped: no CUDA GPU" and exits 0. `--smoke` runs the
same measuring code on the CPU with the tiny pipeline, to check the script; its figures mean
nothing.

Usage: python benchmarks/gpu_sd15.py [--batch-sizes 1,4,8] [--steps 25] [--repeats 3] [--no-compile]
       [--quick] [--json] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from benchmarks.figures import Figure, figures_json, format_table, median, skipped  # noqa: E402

# SD 1.5's published configs (stable-diffusion-v1-5: unet/, vae/, text_encoder/, scheduler/config.json).
SD15_UNET_CONFIG = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "center_input_sample": False,
    "use_linear_projection": False,
}
SD15_VAE_CONFIG = {
    "sample_size": 512,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "scaling_factor": 0.18215,
}
SD15_TEXT_CONFIG = {  # CLIP ViT-L/14's text tower
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
SD15_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
}
# Parameter counts of the released SD 1.5 weights.
SD15_PARAMETERS = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}
SAMPLER = "DPM++ 2M Karras"  # promptkit's default
CFG = 7.5
FULL_BATCH_SIZES, QUICK_BATCH_SIZES = (1, 4, 8), (1, 4)


def build_sd15_models(device: str = "cpu") -> dict:
    """UNet, VAE and text encoder at SD 1.5 size with random weights, in fp32, created on DEVICE.

    `device="meta"` builds them without allocating any weights (to count parameters).
    """
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    with torch.device(device):
        return {
            "unet": UNet2DConditionModel(**SD15_UNET_CONFIG),
            "vae": AutoencoderKL(**SD15_VAE_CONFIG),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**SD15_TEXT_CONFIG)),
        }


def parameter_counts(models: dict) -> dict[str, int]:
    return {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()}


def write_sd15_pipeline(folder: Path, device: str = "cuda") -> Path:
    """Build the random SD 1.5-size pipeline on DEVICE and save it to FOLDER in fp16 safetensors."""
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    from promptkit.lint import load_tokenizer

    models = build_sd15_models(device)
    tokenizer, _ = load_tokenizer(None)
    pipe = StableDiffusionPipeline(**models, tokenizer=tokenizer, scheduler=PNDMScheduler(**SD15_SCHEDULER_CONFIG),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    (folder / "README.txt").write_text("random-weight SD 1.5-size pipeline for benchmarks: it draws noise\n")
    del pipe, models
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return folder


@dataclass
class Setting:
    label: str
    compile: bool = False
    channels_last: bool = False


@dataclass
class Run:
    """What the measured calls share: device, prompt, parameters, library."""

    device: str
    dtype: str
    steps: int
    size: int | None
    repeats: int
    work: Path


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure_setting(model: Path, setting: Setting, batch_sizes: tuple[int, ...], run: Run) -> list[Figure]:
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    from promptkit.engine import Engine, EngineOptions
    from promptkit.generation import GenerationJob, run_job
    from promptkit.library import Library
    from promptkit.params import GenerationParams
    from promptkit.templates import Fields, PromptBuilder

    engine = Engine(str(model), EngineOptions(device=run.device, dtype=run.dtype, compile=setting.compile))
    pipe = engine.pipe
    unet = getattr(pipe.unet, "_orig_mod", pipe.unet)
    unet.set_attn_processor(AttnProcessor2_0())  # SDPA, explicitly
    if setting.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    params = GenerationParams(sampler=SAMPLER, steps=run.steps, cfg=CFG, width=run.size, height=run.size)
    engine._set_sampler(params.sampler)
    prompt = PromptBuilder().render(Fields(subject="a lighthouse on a cliff", environment="stormy sea at dusk",
                                           style=["watercolor"], quality=["standard"]))
    library = Library(run.work / f"library-{setting.label.replace(' ', '-')}.db")
    row = library.get_prompt(library.save_prompt(prompt))
    width, height = params.width or engine.native_size()[0], params.height or engine.native_size()[1]

    def bare(seeds: list[int], callback=None) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            pipe(prompt=[prompt.positive] * len(seeds), negative_prompt=[prompt.negative] * len(seeds),
                 num_inference_steps=run.steps, guidance_scale=CFG, width=width, height=height,
                 generator=engine.generators(seeds, params.noise_device), output_type="pil",
                 callback_on_step_end=callback)
        _sync(run.device)
        return time.perf_counter() - started

    def step_rate(seeds: list[int]) -> float:
        marks: list[float] = []

        def mark(pipeline, step, timestep, kwargs):
            _sync(run.device)
            marks.append(time.perf_counter())
            return kwargs

        bare(seeds, mark)
        return (len(marks) - 1) / (marks[-1] - marks[0])

    def engine_batch(seeds: list[int]) -> float:
        started = time.perf_counter()
        engine.run_batch(prompt.positive, prompt.negative, seeds, params)
        return time.perf_counter() - started

    def whole_job(seeds: list[int]) -> float:
        started = time.perf_counter()
        run_job(library, engine, GenerationJob(prompt=row, params=params, seeds=seeds, batch_size=len(seeds) // 2))
        return time.perf_counter() - started

    figures = []
    if run.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for batch in batch_sizes:
        seeds = list(range(batch))
        job_seeds = list(range(2 * batch))  # two batches, so the writer overlaps the second
        compile_started = time.perf_counter()
        bare(seeds), engine_batch(seeds), whole_job(job_seeds)  # warm-up (and compilation)
        warmup = time.perf_counter() - compile_started
        times: dict[str, list[float]] = {"bare": [], "run_batch": [], "run_job": []}
        for repeat in range(run.repeats):
            order = ["bare", "run_batch", "run_job"]
            for path in order if repeat % 2 == 0 else reversed(order):
                call = {"bare": lambda: bare(seeds), "run_batch": lambda: engine_batch(seeds),
                        "run_job": lambda: whole_job(job_seeds)}[path]
                times[path].append(call())
        rates = [step_rate(seeds) for _ in range(run.repeats)]
        bare_ips = batch / median(times["bare"])
        where = f"{setting.label}, batch {batch}"
        setup = (f"{run.steps} steps, {width}x{height}, {SAMPLER}, cfg {CFG}, {run.dtype}; median of {run.repeats} "
                 f"in alternating order; warm-up {warmup:.1f} s")
        figures += [
            Figure(f"{where}: denoising it/s (bare)", median(rates), "it/s",
                   note=f"{setup}; steps per second between the first and last step's end, GPU synchronised"),
            Figure(f"{where}: images/s, Engine.run_batch", batch / median(times["run_batch"]), "img/s", anchor=bare_ips),
            Figure(f"{where}: images/s, run_job (PNG + library)", 2 * batch / median(times["run_job"]), "img/s",
                   anchor=bare_ips, note=f"{2 * batch} images in 2 batches of {batch}; anchor: bare images/s"),
        ]
    if run.device.startswith("cuda"):
        figures[-1].note += f"; peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
    library.close()
    del engine, pipe
    if run.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return figures


def run_benchmark(batch_sizes: tuple[int, ...], steps: int, repeats: int, compile: bool) -> list[Figure]:
    """The GPU measurement: build, save, then each setting in turn."""
    with tempfile.TemporaryDirectory(prefix="promptkit-sd15-") as work:
        model = write_sd15_pipeline(Path(work) / "sd15-random", "cuda")
        run = Run(device="cuda", dtype="float16", steps=steps, size=512, repeats=repeats, work=Path(work))
        settings = [Setting("SDPA")]
        if compile:
            settings.append(Setting("compile+channels_last", compile=True, channels_last=True))
        figures = []
        for setting in settings:
            figures += measure_setting(model, setting, batch_sizes, run)
        return figures


def run_smoke(model: Path | None = None, batch_sizes: tuple[int, ...] = (1, 2), steps: int = 2) -> list[Figure]:
    """The same measuring code on the CPU with the tiny pipeline (MODEL, or one written now):
    checks the script, not the speed."""
    from promptkit.tinymodel import write_tiny_pipeline

    with tempfile.TemporaryDirectory(prefix="promptkit-sd15-smoke-") as work:
        model = Path(model) if model else write_tiny_pipeline(Path(work) / "tiny-sd")
        run = Run(device="cpu", dtype="float32", steps=steps, size=None, repeats=1, work=Path(work))
        return measure_setting(model, Setting("tiny CPU smoke"), batch_sizes, run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default=None, help="comma-separated (default 1,4,8; --quick 1,4)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile + channels_last setting")
    parser.add_argument("--quick", action="store_true", help="batch 1 and 4 only")
    parser.add_argument("--smoke", action="store_true", help="run the measuring code on CPU with the tiny pipeline")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args(argv)
    title = "full SD 1.5 size, random weights, fp16, 512x512: bare diffusers vs promptkit"
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # random weights make NaN pixels: expected
    if args.smoke:
        figures = run_smoke()
        title = "gpu_sd15 smoke test on CPU, tiny pipeline (figures mean nothing)"
    else:
        import torch

        if not torch.cuda.is_available():
            figures = [skipped("SD 1.5-size pipeline on GPU", "no CUDA GPU")]
        else:
            sizes = (tuple(int(b) for b in args.batch_sizes.split(",")) if args.batch_sizes
                     else QUICK_BATCH_SIZES if args.quick else FULL_BATCH_SIZES)
            figures = run_benchmark(sizes, args.steps, args.repeats, compile=not args.no_compile)
            title += f" on {torch.cuda.get_device_name()}"
    if args.json:
        print(figures_json(figures, benchmark="gpu_sd15", title=title))
    else:
        print(format_table(figures, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
