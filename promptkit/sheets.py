"""Contact sheets (rows = seeds, columns = variants, votes marked) and X/Y grids, drawn with Pillow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .experiments import cells, experiment_votes, get_experiment
from .errors import PromptkitError

BACKGROUND = (24, 26, 31)
TEXT = (232, 234, 240)
MUTED = (150, 156, 170)
WIN = (64, 196, 120)
TIE = (230, 190, 70)
MISSING = (60, 63, 72)
MIN_TILE = 160
PAD = 10


def _font(size: int):
    return ImageFont.load_default(size=size)


def _tile(library, gen: dict[str, Any] | None, size: int) -> Image.Image:
    if gen is None:
        return Image.new("RGB", (size, size), MISSING)
    with Image.open(library.path.parent / gen["image_path"]) as image:
        image = image.convert("RGB")
        # Tiny images are enlarged without smoothing so the pixels stay honest.
        resample = Image.NEAREST if image.width < size else Image.LANCZOS
        return image.resize((size, size), resample)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _grid(library, title: str, col_labels: list[str], row_labels: list[str],
          tiles: list[list[dict[str, Any] | None]], marks: dict[tuple[int, int], str], tile: int) -> Image.Image:
    label_font, title_font, small = _font(16), _font(20), _font(13)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # The seed / Y-value column is as wide as its longest label, within reason.
    left = int(min(280, max([90.0] + [measure.textlength(t, font=label_font) for t in row_labels]) + 2 * PAD))
    top = 40 + 28
    width = left + len(col_labels) * (tile + PAD) + PAD
    height = top + len(row_labels) * (tile + PAD) + PAD + 24
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, 10), _fit(draw, title, title_font, width - 2 * PAD), fill=TEXT, font=title_font)
    for c, label in enumerate(col_labels):
        x = left + c * (tile + PAD)
        draw.text((x, 44), _fit(draw, label, label_font, tile), fill=TEXT, font=label_font)
    for r, label in enumerate(row_labels):
        y = top + r * (tile + PAD)
        draw.text((PAD, y + tile // 2 - 8), _fit(draw, label, label_font, left - 2 * PAD), fill=MUTED,
                  font=label_font)
        for c, gen in enumerate(tiles[r]):
            x = left + c * (tile + PAD)
            sheet.paste(_tile(library, gen, tile), (x, y))
            mark = marks.get((r, c))
            if mark:
                colour = WIN if mark.startswith("won") else TIE
                draw.rectangle((x - 3, y - 3, x + tile + 2, y + tile + 2), outline=colour, width=3)
                box = draw.textbbox((0, 0), mark, font=small)
                draw.rectangle((x, y, x + box[2] + 8, y + box[3] + 6), fill=colour)
                draw.text((x + 4, y + 2), mark, fill=BACKGROUND, font=small)
    draw.text((PAD, height - 22), "green: won its vote(s) · amber: tie · grey: not generated", fill=MUTED, font=small)
    return sheet


def contact_sheet(library, name: str, output: str | Path, tile: int | None = None) -> dict[str, Any]:
    """Rows are seeds, columns are variants; a tile that won a vote is framed green, a tie amber."""
    experiment = get_experiment(library, name)
    done = cells(library, experiment)
    labels = [v["label"] for v in experiment["variants"]]
    seeds = experiment["seeds"]
    if not done:
        raise PromptkitError(f"experiment {name!r} has no images yet; run `promptkit ab run {name}`")
    native = max(g["image_path"] and _image_size(library, g) for g in done.values())
    size = tile or max(MIN_TILE, native)
    wins: dict[tuple[str, int], int] = {}
    ties: dict[tuple[str, int], int] = {}
    for vote in experiment_votes(library, experiment):
        if vote["winner"] == "tie":
            for label in (vote["left"], vote["right"]):
                ties[(label, vote["seed"])] = ties.get((label, vote["seed"]), 0) + 1
        else:
            wins[(vote["winner"], vote["seed"])] = wins.get((vote["winner"], vote["seed"]), 0) + 1
    marks = {}
    for r, seed in enumerate(seeds):
        for c, label in enumerate(labels):
            if wins.get((label, seed)):
                marks[(r, c)] = f"won {wins[(label, seed)]}" if len(labels) > 2 else "won"
            elif ties.get((label, seed)):
                marks[(r, c)] = "tie"
    tiles = [[done.get((label, seed)) for label in labels] for seed in seeds]
    sheet = _grid(library, f"{experiment['name']}: {len(labels)} variants x {len(seeds)} seeds", labels,
                  [f"seed {s}" for s in seeds], tiles, marks, size)
    output = Path(output)
    sheet.save(output, format="PNG")
    return {"path": str(output), "width": sheet.width, "height": sheet.height, "tiles": len(labels) * len(seeds),
            "generated": sum(1 for row in tiles for t in row if t)}


def xy_sheet(library, name: str, output: str | Path, tile: int | None = None) -> dict[str, Any]:
    """An X/Y plot of an experiment made by `promptkit ab xy`: one grid per seed, stacked."""
    experiment = get_experiment(library, name)
    xy = experiment["params"].get("xy")
    if not xy:
        return contact_sheet(library, name, output, tile)
    done = cells(library, experiment)
    size = tile or MIN_TILE
    grids = []
    x, y = xy["x"], xy["y"] or {"name": "", "values": [None]}  # a one-axis plot has no Y
    x_values = x["values"] if x["name"] != "seed" else [None]
    y_values = y["values"] if y["name"] != "seed" else [None]
    seed_axis = "x" if x["name"] == "seed" else "y" if y["name"] == "seed" else None
    seeds = experiment["seeds"]
    for seed in ([None] if seed_axis else seeds):
        cols = x["values"] if seed_axis == "x" else x_values
        rows = y["values"] if seed_axis == "y" else y_values
        tiles = []
        for yv in rows:
            row = []
            for xv in cols:
                s = xv if seed_axis == "x" else yv if seed_axis == "y" else seed
                label = xy["labels"][_key(x, xv, y, yv, seed_axis)]
                row.append(done.get((label, int(s))))
            tiles.append(row)
        title = f"{experiment['name']}: X {x['name']}" + (f", Y {y['name']}" if y["name"] else "") + (
            f", seed {seed}" if seed is not None else "")
        grids.append(_grid(library, title, [f"{x['name']}={v}" for v in cols],
                           [f"{y['name']}={v}" if y["name"] else "" for v in rows],
                           tiles, {}, size))
    width = max(g.width for g in grids)
    sheet = Image.new("RGB", (width, sum(g.height for g in grids)), BACKGROUND)
    offset = 0
    for grid in grids:
        sheet.paste(grid, (0, offset))
        offset += grid.height
    output = Path(output)
    sheet.save(output, format="PNG")
    return {"path": str(output), "width": sheet.width, "height": sheet.height,
            "tiles": sum(len(r) for r in tiles) * len(grids)}


def _key(x, xv, y, yv, seed_axis) -> str:
    xs = "" if seed_axis == "x" else str(xv)
    ys = "" if seed_axis == "y" or yv is None else str(yv)
    return f"{xs}|{ys}"


def _image_size(library, gen) -> int:
    with Image.open(library.path.parent / gen["image_path"]) as image:
        return max(image.size)
