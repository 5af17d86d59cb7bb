"""A library with prompts, lineage, images and ratings, made without torch (PIL draws the images)."""

from __future__ import annotations

import random
from typing import Any

from PIL import Image, ImageDraw

from promptkit.library import Library
from promptkit.pnginfo import encode_png
from promptkit.templates import Fields, PromptBuilder

XSS = "<script>alert(1)</script>"
# The test experiments' variant labels: long enough that a leak would show up in a page's text.
EXPERIMENT_LABELS = ("plain", "fancy")

PALETTES = [
    ((24, 32, 72), (236, 132, 92)),   # dusk
    ((12, 40, 60), (110, 200, 210)),  # sea
    ((40, 20, 50), (250, 190, 120)),  # sunset
    ((18, 48, 30), (170, 220, 140)),  # meadow
    ((30, 30, 36), (200, 200, 215)),  # fog
]


def draw_picture(seed: int, size: int = 256) -> Image.Image:
    """A small landscape (sky gradient, sun, hills, a tower) that varies with SEED."""
    rng = random.Random(seed)
    top, bottom = PALETTES[seed % len(PALETTES)]
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    for y in range(size):
        t = y / (size - 1)
        draw.line([(0, y), (size, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    sun_x, sun_y = int(size * rng.uniform(0.15, 0.85)), int(size * rng.uniform(0.12, 0.5))
    r = int(size * rng.uniform(0.05, 0.12))
    draw.ellipse([sun_x - r, sun_y - r, sun_x + r, sun_y + r], fill=(255, 236, 190))
    for layer in range(3):
        shade = tuple(max(0, c // (layer + 2)) for c in top)
        base = int(size * (0.62 + 0.12 * layer))
        step = max(8, size // 8)
        points = [(0, size)] + [(x, base - int(size * rng.uniform(0, 0.16))) for x in range(0, size + step, step)]
        points.append((size, size))
        draw.polygon(points, fill=shade)
    tower_x, half = int(size * rng.uniform(0.12, 0.88)), max(2, size // 42)
    draw.rectangle([tower_x - half, int(size * 0.45), tower_x + half, int(size * 0.7)], fill=(235, 235, 235))
    draw.polygon([(tower_x - 1.5 * half, int(size * 0.45)), (tower_x + 1.5 * half, int(size * 0.45)),
                  (tower_x, int(size * 0.4))], fill=(200, 60, 50))
    return image


def add_picture(lib: Library, prompt: dict[str, Any], seed: int, size: int = 256) -> int:
    """Store a drawn PNG (with both metadata chunks) and its generation row."""
    meta = {
        "positive": prompt["positive"], "negative": prompt["negative"], "seed": seed, "sampler": "Euler a",
        "steps": 20, "cfg": 7.0, "width": size, "height": size, "noise_device": "cpu", "extra": {},
        "batch": {"size": 1, "index": 0, "seeds": [seed]}, "model": "sample-painter", "model_hash": "0123456789",
        "device": "cpu", "dtype": "float32", "versions": {"promptkit": "0.1.0"},
    }
    sha, file = lib.store_image(encode_png(draw_picture(seed, size), meta))
    return lib.add_generation({
        "prompt_id": prompt["id"], "model": meta["model"], "model_hash": meta["model_hash"], "sampler": meta["sampler"],
        "steps": meta["steps"], "cfg": meta["cfg"], "width": size, "height": size, "seed": seed,
        "noise_device": "cpu", "batch": meta["batch"], "params": {}, "image_sha256": sha,
        "image_path": lib.relative_image_path(file), "device": "cpu", "dtype": "float32",
        "versions": meta["versions"], "seconds": 1.5,
    })


def fill_sample_library(lib: Library) -> dict[str, Any]:
    """Prompts with lineage, tags, a star, images and ratings; one prompt carries a script tag."""
    builder = PromptBuilder()

    def save(name, parent=None, tags=(), **fields):
        prompt = builder.render(Fields(**fields))
        return lib.get_prompt(lib.save_prompt(prompt, name=name, parent_id=parent, tags=list(tags)))

    lighthouse = save("lighthouse", subject="a lighthouse on a cliff", environment="stormy sea at dusk",
                      style=["watercolor"], tags=["sea", "landscape"])
    lighthouse_v2 = save("lighthouse-v2", parent=lighthouse["id"], subject="a lighthouse on a cliff",
                         environment="stormy sea at dusk, crashing waves", style=["cinematic"],
                         quality=["highly-detailed"], tags=["sea", "landscape"])
    fox = save("red-fox", subject="a red fox in fresh snow", environment="pine forest, morning light",
               style=["photorealistic"], tags=["animals"])
    harbour = save(None, subject="a quiet harbour with fishing boats", style=["oil-painting"], tags=["sea"])
    evil = save(f"evil{XSS}", subject=f"a cat {XSS}", tags=[XSS])
    generations: dict[str, list[int]] = {}
    for index, prompt in enumerate([lighthouse, lighthouse_v2, fox, harbour, evil]):
        generations[prompt["name"] or str(prompt["id"])] = [
            add_picture(lib, prompt, seed) for seed in range(index * 10 + 1, index * 10 + 5)
        ]
    lib.rate(generations["lighthouse"][0], 4, "nice sky")
    lib.rate(generations["lighthouse-v2"][1], 5)
    lib.set_starred(lighthouse_v2["id"], True)
    return {"lighthouse": lighthouse, "lighthouse_v2": lighthouse_v2, "fox": fox, "harbour": harbour,
            "evil": evil, "generations": generations}
