"""Experiment rows: experiments, their variants and their cells (the generations made for them)."""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable, TypeVar

from ..errors import BadParameter, NotFound
from .connection import utc_now

T = TypeVar("T")


class ExperimentRows:
    """Experiment access, mixed into `Library`. The rules (labels, overrides, which cell is
    whose) live in `promptkit.experiments`; these only read and write rows."""

    def experiment_exists(self, name: str) -> bool:
        """Whether an experiment is named NAME."""
        return self.db.execute("SELECT 1 FROM experiments WHERE name = ?", [name]).fetchone() is not None

    def create_experiment_with_prompts(self, base_id: int, prompts: list[Any], tags: list[str],
                                       create: Callable[[list[int]], T]) -> T:
        """Save the child prompts an experiment needs and create it, as one all-or-nothing step.

        Each of PROMPTS is a rendered `templates.Prompt`, saved as a child of prompt BASE_ID with TAGS,
        or None for BASE_ID itself. CREATE(prompt ids, in PROMPTS' order) then creates the experiment
        (`experiments.create_experiment`). Both run in one BEGIN IMMEDIATE transaction: if CREATE
        raises (a name taken, a bad variant), no child prompt is left behind.
        """
        with self.write():
            ids = [base_id if prompt is None else self.save_prompt(prompt, parent_id=base_id, tags=list(tags))
                   for prompt in prompts]
            return create(ids)

    def insert_experiment(self, name: str, seeds: list[int], params: dict[str, Any], model: str | None,
                          variants: list[tuple[str, int, dict[str, Any]]]) -> int | None:
        """Store an experiment and its VARIANTS ((label, prompt id, overrides)) in one transaction;
        return its id, or None (nothing written) when an experiment is named NAME already, checked
        under the write lock. The rest is checked by the caller (`experiments.create_experiment`)."""
        with self.write() as db:
            if self.experiment_exists(name):
                return None
            table = db["experiments"]
            table.insert({"name": name, "seeds": json.dumps([int(s) for s in seeds]),
                          "params": json.dumps(params, sort_keys=True), "model": model, "created_at": utc_now()})
            experiment_id = int(table.last_pk)
            db["variants"].insert_all(
                {"experiment_id": experiment_id, "label": label, "prompt_id": prompt_id,
                 "params": json.dumps(overrides, sort_keys=True)}
                for label, prompt_id, overrides in variants
            )
        return experiment_id

    def experiment_row(self, ref: str) -> dict[str, Any]:
        """An experiment by name or id (ASCII digits) with `variants`: [{label, prompt_id, overrides}]
        in the order they were given; seeds, params and overrides decoded."""
        text = str(ref).strip()
        # ASCII digits only ("³".isdigit() is true) and within SQLite's integer range.
        by_id = text.isascii() and text.isdigit() and len(text) <= 18
        column = "id" if by_id else "name"
        row = self.db.execute(f"SELECT id, name, seeds, params, model, created_at FROM experiments WHERE {column} = ?",
                              [int(text) if by_id else text]).fetchone()
        if row is None:
            raise NotFound(f"no experiment named {text!r}; see `promptkit ab list`")
        experiment = {"id": row[0], "name": row[1], "seeds": json.loads(row[2]), "params": json.loads(row[3] or "{}"),
                      "model": row[4], "created_at": row[5]}
        experiment["variants"] = [
            {"label": label, "prompt_id": prompt_id, "overrides": json.loads(overrides or "{}")}
            for label, prompt_id, overrides in self.db.execute(
                "SELECT label, prompt_id, params FROM variants WHERE experiment_id = ? ORDER BY rowid", [row[0]])
        ]
        return experiment

    def experiment_summaries(self) -> list[dict[str, Any]]:
        """Every experiment, oldest first: id, name, seeds (how many), created_at, and how many
        variants, generations and votes it has."""
        rows = self.db.execute(
            "SELECT e.id, e.name, e.seeds, e.created_at, "
            "(SELECT count(*) FROM variants v WHERE v.experiment_id = e.id), "
            "(SELECT count(*) FROM generations g WHERE g.experiment_id = e.id), "
            "(SELECT count(*) FROM votes w WHERE w.experiment_id = e.id) "
            "FROM experiments e ORDER BY e.id"
        ).fetchall()
        return [{"id": r[0], "name": r[1], "seeds": len(json.loads(r[2])), "created_at": r[3], "variants": r[4],
                 "generations": r[5], "votes": r[6]} for r in rows]

    def experiment_generations(self, experiment_id: int) -> list[dict[str, Any]]:
        """The generations made for an experiment, in id order: {id, label, seed, image_path, image_sha256,
        reproducible} (reproducible 0: a seedless backend's replicate)."""
        rows = self.db.execute(
            "SELECT id, variant, seed, image_path, image_sha256, reproducible FROM generations "
            "WHERE experiment_id = ? ORDER BY id", [experiment_id])
        return [{"id": gen_id, "label": label, "seed": seed, "image_path": path, "image_sha256": sha,
                 "reproducible": reproducible}
                for gen_id, label, seed, path, sha, reproducible in rows]

    def set_experiment_seeds(self, experiment_id: int, seeds: list[int]) -> None:
        """Replace an experiment's seed list."""
        with self.write() as db:
            db.execute("UPDATE experiments SET seeds = ? WHERE id = ?", [json.dumps(list(seeds)), experiment_id])

    def experiment_variant(self, experiment_id: int, label: str) -> tuple[int | None, str | None] | None:
        """(prompt_id, overrides as stored) of the variant LABEL of an experiment, or None."""
        found = self.db.execute("SELECT prompt_id, params FROM variants WHERE experiment_id = ? AND label = ?",
                                [experiment_id, label]).fetchone()
        return None if found is None else tuple(found)

    def experiment_version(self, experiment_id: int) -> tuple[str, str]:
        """What changes when a vote or a cell is added or removed: ("count:max id" of its votes,
        the same of its generations). The web page keys its cached contact sheet on it."""
        return tuple(self.db.execute(
            "SELECT (SELECT count(*) || ':' || coalesce(max(id), 0) FROM votes WHERE experiment_id = :e), "
            "(SELECT count(*) || ':' || coalesce(max(id), 0) FROM generations WHERE experiment_id = :e)",
            {"e": experiment_id}).fetchone())

    def delete_experiment(self, ref: str, with_generations: bool = False) -> dict[str, Any]:
        """Delete an experiment (name or id), its variants and votes, and with WITH_GENERATIONS its
        cells (generation rows) and their ratings, in one transaction; nothing changes when it is
        refused (an experiment with images and no WITH_GENERATIONS). The variants' prompts stay."""
        with self.write() as db:
            experiment = self.experiment_row(ref)
            experiment_id, name = experiment["id"], experiment["name"]
            images = db.execute("SELECT count(*) FROM generations WHERE experiment_id = ?",
                                [experiment_id]).fetchone()[0]
            if images and not with_generations:
                raise BadParameter(f"experiment {name!r} has {images} image{'s' if images > 1 else ''}; pass "
                                   "--with-images to delete their rows too")
            self._release_files(db, "experiment_id = ?", [experiment_id])
            db.conn.executemany("INSERT OR REPLACE INTO released_files (sha256, released_at) VALUES (?, ?)",
                                [(sha, time.time()) for sha in sorted(set(
                                    re.findall(r"\b[0-9a-f]{64}\b", json.dumps(experiment["params"]))))])
            votes = db.execute("DELETE FROM votes WHERE experiment_id = ?", [experiment_id]).rowcount
            ratings = db.execute("DELETE FROM ratings WHERE generation_id IN (SELECT id FROM generations WHERE "
                                 "experiment_id = ?)", [experiment_id]).rowcount
            db.execute("DELETE FROM generations WHERE experiment_id = ?", [experiment_id])
            db.execute("DELETE FROM variants WHERE experiment_id = ?", [experiment_id])
            db.execute("DELETE FROM experiments WHERE id = ?", [experiment_id])
        return {"id": experiment_id, "name": name, "generations_deleted": images, "votes_deleted": votes,
                "ratings_deleted": ratings}

    def rename_experiment(self, ref: str, new_name: str) -> dict[str, Any]:
        """Rename an experiment (name or id) to NEW_NAME, checked by the caller's rules and here for
        being taken, under the write lock; returns {id, old_name, name}."""
        with self.write() as db:
            experiment = self.experiment_row(ref)
            if new_name != experiment["name"] and self.experiment_exists(new_name):
                raise BadParameter(f"an experiment named {new_name!r} already exists; choose another name")
            db.execute("UPDATE experiments SET name = ? WHERE id = ?", [new_name, experiment["id"]])
        return {"id": experiment["id"], "old_name": experiment["name"], "name": new_name}
