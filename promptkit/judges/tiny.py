"""Tiny random-weight CLIP models for tests and offline use, built from configs.

Saved with `save_pretrained` (safetensors) together with a processor whose tokenizer is CLIP's
real vocabulary, bundled with promptkit, so a tiny judge loads through exactly the code a real
one (openai/clip-vit-large-patch14, PickScore_v1) takes. Its scores are noise, not judgements.
"""

from __future__ import annotations

from pathlib import Path

TINY_CLIP_NOTE = "random-weight tiny CLIP model made by `promptkit model tiny --kind clip`: its scores are noise"
IMAGE_SIZE = 32


def build_tiny_clip(seed: int = 0):
    """(CLIPModel, CLIPProcessor): 2 layers, width 32, 32-px images in 8-px patches."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from ..lint import load_tokenizer

    text = dict(vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                  image_size=IMAGE_SIZE, patch_size=8, num_channels=3)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    tokenizer, _ = load_tokenizer(None)
    image_processor = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                         crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    return model, CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def write_tiny_clip(path: str | Path, seed: int = 0) -> Path:
    """Save the tiny CLIP model and its processor to the folder PATH and return it."""
    from ..tinymodel import _quiet

    _quiet()
    folder = Path(path).expanduser()
    model, processor = build_tiny_clip(seed)
    model.save_pretrained(str(folder), safe_serialization=True)
    processor.save_pretrained(str(folder))
    (folder / "README.txt").write_text(TINY_CLIP_NOTE + "\n", encoding="utf-8")
    return folder
