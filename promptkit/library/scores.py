"""Score rows: automatic judges' numbers for images (one per image, judge and judge model)."""

from __future__ import annotations

from typing import Any

from .connection import utc_now
from .rows import placeholders


class ScoreRows:
    """Score access, mixed into `Library`; `promptkit.service.scores` holds the rules."""

    def stored_scores(self, generation_ids: list[int], judge: str, judge_model: str) -> dict[int, dict[str, Any]]:
        """The stored scores of JUDGE with JUDGE_MODEL for GENERATION_IDS: id -> {value, model_hash, created_at}."""
        out: dict[int, dict[str, Any]] = {}
        ids = [int(i) for i in generation_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self.db.execute(
                f"SELECT generation_id, value, model_hash, created_at FROM scores WHERE judge = ? AND judge_model = ? "
                f"AND generation_id IN ({placeholders(chunk)})", [judge, judge_model, *chunk])
            for gen_id, value, model_hash, created in rows:
                out[gen_id] = {"value": value, "model_hash": model_hash, "created_at": created}
        return out

    def save_scores(self, judge: str, judge_model: str, model_hash: str, values: dict[int, float]) -> int:
        """Store VALUES (generation id -> score) for JUDGE and JUDGE_MODEL in one transaction, replacing
        earlier scores of the same images by the same judge and model; returns how many were written."""
        now = utc_now()
        with self.write() as db:
            db.conn.executemany(
                "INSERT INTO scores (generation_id, judge, judge_model, model_hash, value, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (generation_id, judge, judge_model) DO UPDATE SET "
                "model_hash = excluded.model_hash, value = excluded.value, created_at = excluded.created_at",
                [(int(gen_id), judge, judge_model, model_hash, float(value), now) for gen_id, value in values.items()])
        return len(values)

    def generation_scores(self, generation_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """Every stored score of GENERATION_IDS: id -> [{judge, judge_model, model_hash, value, created_at}]."""
        out: dict[int, list[dict[str, Any]]] = {}
        ids = [int(i) for i in generation_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self.db.execute(
                "SELECT generation_id, judge, judge_model, model_hash, value, created_at FROM scores "
                f"WHERE generation_id IN ({placeholders(chunk)}) ORDER BY judge, judge_model, generation_id", chunk)
            for gen_id, judge, model, model_hash, value, created in rows:
                out.setdefault(gen_id, []).append({"judge": judge, "judge_model": model, "model_hash": model_hash,
                                                   "value": value, "created_at": created})
        return out

    def experiment_scores(self, experiment_id: int) -> list[dict[str, Any]]:
        """Scores of an experiment's images: generation_id, variant, seed, judge, judge_model, value."""
        rows = self.db.execute(
            "SELECT scores.generation_id, generations.variant, generations.seed, scores.judge, scores.judge_model, "
            "scores.value FROM scores JOIN generations ON generations.id = scores.generation_id "
            "WHERE generations.experiment_id = ? ORDER BY scores.judge, scores.judge_model, generations.id",
            [int(experiment_id)])
        keys = ("generation_id", "variant", "seed", "judge", "judge_model", "value")
        return [dict(zip(keys, row)) for row in rows]

    def generations_by_ids(self, generation_ids: list[int]) -> list[dict[str, Any]]:
        """Generation rows (id, prompt_id, experiment_id, variant, seed, image_path, positive) for the ids
        that exist, in the order given."""
        ids = [int(i) for i in generation_ids]
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self.db.execute(
                "SELECT generations.id, generations.prompt_id, generations.experiment_id, generations.variant, "
                "generations.seed, generations.image_path, prompts.positive FROM generations "
                f"JOIN prompts ON prompts.id = generations.prompt_id WHERE generations.id IN ({placeholders(chunk)})",
                chunk)
            keys = ("id", "prompt_id", "experiment_id", "variant", "seed", "image_path", "positive")
            for row in rows:
                found[row[0]] = dict(zip(keys, row))
        return [found[i] for i in ids if i in found]

    def generation_ids_for(self, prompt_id: int | None = None, experiment_id: int | None = None) -> list[int]:
        """The ids of a prompt's or an experiment's generations, oldest first."""
        column, value = ("prompt_id", prompt_id) if prompt_id is not None else ("experiment_id", experiment_id)
        return [r[0] for r in self.db.execute(f"SELECT id FROM generations WHERE {column} = ? ORDER BY id",
                                               [int(value)])]
