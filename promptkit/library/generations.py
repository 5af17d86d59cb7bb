"""Generation rows and their ratings.

A generation's rating is its latest rating: rating again means the person changed their mind,
so the newest judgement replaces the earlier ones, which stay as history (`generation_ratings`).
`current_rating_sql` is the one definition of it; the library summaries, `show_prompt`, the
experiment statistics and the web pages all read it through here.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import BadParameter, LibraryProblem, NotFound
from .connection import utc_now
from .rows import decode, is_row_id, placeholders

GENERATION_JSON = ("batch", "params", "versions")


def current_rating_sql(generation_ids_sql: str) -> str:
    """SQL giving (generation_id, stars) of the current rating of each generation whose id is
    among GENERATION_IDS_SQL (a list of `?` or a subquery): the rating row with the highest id."""
    return ("SELECT generation_id, stars FROM ratings WHERE id IN (SELECT max(id) FROM ratings "
            f"WHERE generation_id IN ({generation_ids_sql}) GROUP BY generation_id)")


class GenerationRows:
    """Generation and rating access, mixed into `Library`."""

    def add_generation(self, row: dict[str, Any]) -> int:
        """Insert a generation row; its image, and the input images and LoRA copies its params
        name, must already be on disk."""
        from ..inputs import input_image_shas, stored_lora_shas

        record = dict(row)
        for key in GENERATION_JSON:
            if key in record and not isinstance(record[key], str):
                record[key] = json.dumps(record[key], sort_keys=True)
        record.setdefault("created_at", utc_now())
        with self.write() as db:
            # Checked under the write lock, which `doctor --fix` holds while it moves files.
            if not self.image_file(row["image_sha256"]).is_file():
                raise LibraryProblem(f"refusing to record generation: image {row['image_sha256']} is not on disk")
            params = row.get("params")
            for what, sha, file in [*(("input image", sha, self.image_file(sha)) for sha in input_image_shas(params)),
                                    *(("LoRA copy", sha, self.lora_file(sha)) for sha in stored_lora_shas(params))]:
                if not file.is_file():
                    raise LibraryProblem(f"refusing to record generation: its {what} {sha} is not on disk")
            table = db["generations"]
            table.insert(record)
            return int(table.last_pk)

    def add_generations(self, make_rows: Callable[[], list[dict[str, Any]]]) -> list[int]:
        """Insert the rows MAKE_ROWS() returns in one BEGIN IMMEDIATE transaction, together with whatever
        MAKE_ROWS writes first (the prompt they belong to): one failure and nothing is written."""
        with self.write():
            return [self.add_generation(row) for row in make_rows()]

    def _row_by_id(self, table: str, row_id: int, what: str) -> dict[str, Any]:
        """TABLE's row ROW_ID as a dict; NotFound names WHAT when there is none."""
        row = None
        if is_row_id(int(row_id)):
            row = self.db.execute(f"SELECT * FROM {table} WHERE id = ?", [int(row_id)]).fetchone()
        if row is None:
            raise NotFound(f"no {what} with id {row_id} in {str(self.path)!r}")
        return self._row_dict(table, row)

    def get_generation(self, generation_id: int) -> dict[str, Any]:
        return decode(self._row_by_id("generations", generation_id, "generation"), GENERATION_JSON)

    def generation_with_image(self, sha256: str) -> int | None:
        """The id of the first generation whose image has this sha256 (None if none has)."""
        row = self.db.execute("SELECT id FROM generations WHERE image_sha256 = ? ORDER BY id LIMIT 1",
                              [sha256]).fetchone()
        return None if row is None else int(row[0])

    def add_generation_with_prompt(self, sha256: str, prompt: dict[str, Any],
                                   generation: Callable[[int], dict[str, Any]]) -> tuple[int, int, bool]:
        """In one transaction: unless a generation already has image SHA256, find the prompt with PROMPT's
        positive, negative and template (else insert PROMPT, keyword arguments of `insert_prompt`), then
        insert GENERATION(prompt id). The image must already be on disk. Returns (generation id, prompt id,
        whether it was added)."""
        with self.write():
            existing = self.generation_with_image(sha256)
            if existing is not None:
                return existing, int(self.get_generation(existing)["prompt_id"]), False
            same = self.prompts_with_text(prompt["positive"], prompt["negative"], prompt["template"])
            prompt_id = int(same[0]["id"]) if same else self.insert_prompt(**prompt)
            return self.add_generation(generation(prompt_id)), prompt_id, True

    def newest_generation_id(self) -> int:
        """The highest generation id so far (0 in an empty library)."""
        return self.db.execute("SELECT coalesce(max(id), 0) FROM generations").fetchone()[0]

    def generations_by_seed(self, prompt_id: int, seeds: list[int], after_id: int = 0,
                            outside_experiments: bool = False) -> list[dict[str, Any]]:
        """PROMPT_ID's generations on SEEDS with an id above AFTER_ID, as {id, seed, image_sha256},
        in id order; with OUTSIDE_EXPERIMENTS only those not made as an experiment's cells, else
        those outside experiments come last."""
        where = " AND experiment_id IS NULL" if outside_experiments else ""
        order = "id" if outside_experiments else "experiment_id IS NULL, id"
        rows = self.db.execute(
            f"SELECT id, seed, image_sha256 FROM generations WHERE prompt_id = ? AND id > ? "
            f"AND seed IN ({placeholders(seeds)}){where} ORDER BY {order}", [prompt_id, after_id, *seeds])
        return [{"id": gen_id, "seed": seed, "image_sha256": sha} for gen_id, seed, sha in rows]

    def latest_run_settings(self, prompt_id: int) -> dict[str, Any] | None:
        """The settings of PROMPT_ID's newest generation (sampler, steps, cfg, width, height,
        noise_device, model, params as stored) with `seeds`, every seed run with those settings
        (first run first), and `batch_size`, the largest batch on that model; None if it has none."""
        latest = self.db.execute(
            "SELECT sampler, steps, cfg, width, height, noise_device, model, params FROM generations "
            "WHERE prompt_id = ? ORDER BY id DESC LIMIT 1", [prompt_id]).fetchone()
        if latest is None:
            return None
        keys = ("sampler", "steps", "cfg", "width", "height", "noise_device", "model", "params")
        settings = dict(zip(keys, latest))
        settings["seeds"] = [row[0] for row in self.db.execute(
            "SELECT DISTINCT seed FROM generations WHERE prompt_id = ? AND sampler = ? AND steps = ? AND cfg = ? "
            "AND width = ? AND height = ? AND model = ? ORDER BY id", [prompt_id, *latest[:5], latest[6]])]
        settings["batch_size"] = max(json.loads(row[0] or "{}").get("size", 1) for row in self.db.execute(
            "SELECT batch FROM generations WHERE prompt_id = ? AND model = ?", [prompt_id, latest[6]]))
        return settings

    def rate(self, generation_id: int, stars: int, note: str = "") -> int:
        """Rate a generation 1 to 5 stars; this becomes its current rating. Returns the rating's id."""
        if not 1 <= int(stars) <= 5:
            raise BadParameter(f"stars must be 1 to 5 but is {stars}")
        with self.write() as db:
            self.get_generation(generation_id)
            table = db["ratings"]
            table.insert({"generation_id": int(generation_id), "stars": int(stars), "note": note, "created_at": utc_now()})
            return int(table.last_pk)

    @staticmethod
    def _release_files(db, where: str, params) -> None:
        """Record, inside a delete's transaction, the sha256 of every file (image, input image,
        stored LoRA) named by the generations WHERE selects, before they are deleted: `doctor --fix`
        may move one of them at once when no row refers to it any more (see m005_released_files)."""
        shas: set[str] = set()
        for sha, gen_params in db.execute(f"SELECT image_sha256, params FROM generations WHERE {where}", params):
            shas.add(str(sha))
            shas.update(re.findall(r"\b[0-9a-f]{64}\b", str(gen_params or "")))
        now = time.time()
        db.conn.executemany("INSERT OR REPLACE INTO released_files (sha256, released_at) VALUES (?, ?)",
                            [(sha, now) for sha in sorted(shas)])

    def current_ratings(self, generation_ids: list[int]) -> dict[int, int]:
        """generation id -> its current rating (its latest), for those of GENERATION_IDS rated."""
        ids = [int(g) for g in generation_ids]
        if not ids:
            return {}
        return dict(self.db.execute(current_rating_sql(placeholders(ids)), ids).fetchall())

    def current_rating(self, generation_id: int) -> int | None:
        """A generation's rating: its latest one, or None if it was never rated."""
        return self.current_ratings([generation_id]).get(int(generation_id))

    def generation_ratings(self, generation_id: int) -> list[dict[str, Any]]:
        """A generation's ratings, oldest first (the last one is its current rating)."""
        rows = self.db.execute("SELECT * FROM ratings WHERE generation_id = ? ORDER BY id", [int(generation_id)])
        return [self._row_dict("ratings", r) for r in rows]

    def get_rating(self, rating_id: int) -> dict[str, Any]:
        return self._row_by_id("ratings", rating_id, "rating")

    def generation_image(self, generation_id: int) -> Path:
        """A generation's image (a PNG; an imported JPEG or WebP), found by its sha256 inside the images folder. The review page serves
        images by id through this, so no path stored in a row can point it at another file."""
        file = self.stored_image(self.get_generation(generation_id)["image_sha256"])
        if file is None:
            raise NotFound(f"the image of generation {generation_id} is missing from {str(self.images_dir)!r}")
        return file

    def image_parameters(self, generation_id: int) -> str | None:
        """The AUTOMATIC1111 `parameters` text stored in a generation's PNG, or in an imported JPEG's or
        WebP's EXIF UserComment (None if it has none)."""
        from ..pnginfo import PARAMETERS_KEY, read_png_text

        file = self.generation_image(generation_id)
        if file.suffix == ".png":
            return read_png_text(file).get(PARAMETERS_KEY)
        # an imported JPEG/WebP: the A1111 text its EXIF UserComment held, kept verbatim at import
        try:
            kept = json.loads(self.get_generation(generation_id).get("source_metadata") or "{}")
        except ValueError:
            return None
        text = kept.get("UserComment") if isinstance(kept, dict) else None
        return text if isinstance(text, str) else None
