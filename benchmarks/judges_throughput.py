"""GPU throughput of the CLIP-family judges: images scored per second at batch 32 in fp16.

Cases (random weights at full size, built from the published configs; speed does not depend on
the weights' values): CLIP ViT-L/14 (openai/clip-vit-large-patch14, the default CLIP score judge)
and CLIP ViT-H/14 (laion/CLIP-ViT-H-14-laion2B-s32B-b79K, PickScore_v1's architecture). Each batch
is what `promptkit score` runs: 32 images through the vision tower and 32 prompts (77 tokens)
through the text tower, then the cosine similarities (the calls `promptkit.judges.clip.ClipScorer.embed`
makes). Image decoding and preprocessing are left out (they run on the CPU).

Usage: python benchmarks/judges_throughput.py [--batches 20] [--batch-size 32]
Without a CUDA GPU it prints "skipped: no GPU" and exits 0.
NOTE: written without a GPU at hand; the CPU path (the skip) is what has been run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VIT_L14 = dict(
    text=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12),
    vision=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24,
                patch_size=14, image_size=224),
    projection_dim=768, hidden_act="quick_gelu")
VIT_H14 = dict(
    text=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24),
    vision=dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32,
                patch_size=14, image_size=224),
    projection_dim=1024, hidden_act="gelu")
CASES = {"CLIP ViT-L/14": VIT_L14, "CLIP ViT-H/14": VIT_H14}


def build(spec: dict):
    import torch
    from transformers import CLIPConfig, CLIPModel

    act = spec["hidden_act"]
    config = CLIPConfig(text_config={**spec["text"], "hidden_act": act, "vocab_size": 49408,
                                     "max_position_embeddings": 77},
                        vision_config={**spec["vision"], "hidden_act": act}, projection_dim=spec["projection_dim"])
    torch.manual_seed(0)
    return CLIPModel(config).to("cuda", torch.float16).eval()


def images_per_second(model, batch_size: int, batches: int) -> list[float]:
    """Images scored per second, one figure per timed batch (after 3 warm-up batches)."""
    import torch

    size = model.config.vision_config.image_size
    pixels = torch.randn(batch_size, 3, size, size, device="cuda", dtype=torch.float16)
    tokens = torch.randint(0, 49406, (batch_size, 77), device="cuda")
    mask = torch.ones_like(tokens)
    rates = []
    with torch.inference_mode():
        for step in range(batches + 3):
            torch.cuda.synchronize()
            start = time.perf_counter()
            image = model.get_image_features(pixel_values=pixels)
            text = model.get_text_features(input_ids=tokens, attention_mask=mask)
            image = getattr(image, "pooler_output", image)
            text = getattr(text, "pooler_output", text)
            scores = 100 * torch.nn.functional.cosine_similarity(image, text).clamp(min=0)
            scores.float().cpu()
            torch.cuda.synchronize()
            if step >= 3:
                rates.append(batch_size / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("skipped: no GPU (torch is not installed)")
        return
    if not torch.cuda.is_available():
        print("skipped: no GPU")
        return
    print(f"GPU: {torch.cuda.get_device_name(0)}; batch {args.batch_size}, fp16, {args.batches} timed batches")
    for name, spec in CASES.items():
        model = build(spec)
        rates = images_per_second(model, args.batch_size, args.batches)
        print(f"{name}: {statistics.median(rates):.0f} images/s (median; min {min(rates):.0f}, max {max(rates):.0f})")
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
