"""Prompt rows: save, find, search, list, star, delete, lineage and the summaries pages show."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable, TypeVar

from ..errors import BadParameter, NotFound
from .connection import setting, utc_now
from .generations import current_rating_sql
from .rows import decode, is_row_id, looks_like_id, placeholders

PROMPT_JSON = ("fields", "tags")
R = TypeVar("R")


class PromptRows:
    """Prompt access, mixed into `Library`."""

    def save_prompt(self, prompt, name: str | None = None, parent_id: int | None = None,
                    tags: list[str] | None = None, notes: str = "") -> int:
        """Store a rendered `templates.Prompt`; return its id."""
        with self.write() as db:
            if name is not None:
                if not name.strip():
                    raise BadParameter("a prompt name cannot be empty")
                if looks_like_id(name.strip()):
                    raise BadParameter(f"prompt name {name!r} is all digits; it would be mistaken for an id")
                if db.execute("SELECT 1 FROM prompts WHERE name = ?", [name]).fetchone():
                    raise BadParameter(f"a prompt named {name!r} already exists; choose another --save name")
            if parent_id is not None:
                self.get_prompt(parent_id)
            return self.insert_prompt(
                name=name, template=prompt.template, template_digest=prompt.template_digest,
                fields=json.dumps(prompt.fields.to_dict(), sort_keys=True),
                positive=prompt.positive, negative=prompt.negative,
                parent_id=parent_id, tags=tags, notes=notes)

    def insert_prompt(self, *, name: str | None, template: str | None, template_digest: str | None,
                      fields: dict[str, Any] | str, positive: str, negative: str, parent_id: int | None = None,
                      tags: list[str] | None = None, notes: str = "") -> int:
        """Insert a prompt row as given, unchecked (`save_prompt` checks the name and parent); return its id.
        FIELDS is a dict (stored as JSON, as typed) or JSON text stored as it is."""
        with self.write() as db:
            table = db["prompts"]
            table.insert({
                "name": name,
                "template": template,
                "template_digest": template_digest,
                "fields": fields if isinstance(fields, str) else json.dumps(fields, sort_keys=True, ensure_ascii=False),
                "positive": positive,
                "negative": negative,
                "parent_id": parent_id,
                "tags": json.dumps(tags or [], ensure_ascii=False),  # as typed, so full-text search finds it
                "notes": notes,
                "starred": 0,
                "created_at": utc_now(),
            })
            return int(table.last_pk)

    def add_prompts_once(self, prompts: list[dict[str, Any]],
                         same: Callable[[dict[str, Any], int], bool]) -> list[tuple[int, bool]]:
        """Insert each of PROMPTS (keyword arguments of `insert_prompt`) unless the library (or an
        earlier one of PROMPTS) already has it, all in one BEGIN IMMEDIATE transaction: one failure
        and nothing is written. SAME(row, index) says whether a stored row with the same positive,
        negative and template is the same prompt as PROMPTS[index].

        :returns: for each prompt, (prompt id, True when it was already there and skipped).
        """
        results: list[tuple[int, bool]] = []
        with self.write():
            for index, prompt in enumerate(prompts):
                candidates = self.prompts_with_text(prompt["positive"], prompt["negative"], prompt["template"])
                duplicate = next((row for row in candidates if same(row, index)), None)
                if duplicate is not None:
                    results.append((int(duplicate["id"]), True))
                else:
                    results.append((self.insert_prompt(**prompt), False))
        return results

    def save_child_prompt(self, save: Callable[[], R], attach: Callable[[R], None] | None = None) -> R:
        """Save a child prompt and what it brings with it as one all-or-nothing step.

        SAVE writes the child (`lineage.iterate_prompt`) and returns its result; ATTACH(result) then
        stores what the child needs (the LoRA files of its new `<lora:NAME>` tags). Both run in one
        BEGIN IMMEDIATE transaction: if ATTACH raises (a tag that cannot be resolved), the child is
        rolled back and nothing is written.
        """
        with self.write():
            result = save()
            if attach is not None:
                attach(result)
            return result

    def get_prompt(self, ref: int | str) -> dict[str, Any]:
        """A prompt by id (digits) or by name."""
        text = str(ref).strip()
        if looks_like_id(text):
            row = None
            if is_row_id(int(text)):
                row = self.db.execute("SELECT * FROM prompts WHERE id = ?", [int(text)]).fetchone()
        else:
            row = self.db.execute("SELECT * FROM prompts WHERE name = ?", [text]).fetchone()
        if row is None:
            raise NotFound(f"no prompt with id or name {text!r} in {str(self.path)!r}")
        return decode(self._row_dict("prompts", row), PROMPT_JSON)

    def prompts_with_text(self, positive: str, negative: str, template: str | None) -> list[dict[str, Any]]:
        """Prompts with exactly this positive and negative text and template, oldest first."""
        rows = self.conn.execute("SELECT * FROM prompts WHERE positive = ? AND negative = ? AND template = ? "
                                 "ORDER BY id", [positive, negative, template])
        return [self._row_dict("prompts", row) for row in rows]

    def prompt_with_text(self, positive: str, negative: str) -> dict[str, Any] | None:
        """The oldest prompt with exactly this positive and negative text, whatever its template; None if none."""
        row = self.conn.execute("SELECT * FROM prompts WHERE positive = ? AND negative = ? ORDER BY id LIMIT 1",
                                [positive, negative]).fetchone()
        return None if row is None else decode(self._row_dict("prompts", row), PROMPT_JSON)

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Full-text search over name, positive, negative, tags and notes, best match first.

        A query matching more than SEARCH_RANK_LIMIT prompts ranks only the newest that many.
        """
        if not query.strip():
            raise BadParameter("search query is empty")
        # Quote each word so FTS syntax characters in a prompt cannot break the query; FTS5 reads
        # a query only up to a NUL character, so those separate words like spaces.
        words = query.replace("\x00", " ").split()
        fts_query = " ".join('"' + word.replace('"', '""') + '"' for word in words)
        if not words:
            return []
        try:
            # bm25() scores every match, so a word in most prompts ("blurry", in every packaged
            # negative) would cost 45 ms at 100,000 prompts. Only the newest SEARCH_RANK_LIMIT
            # matches are ranked: the inner lookup finds the rowid where they start by walking the
            # doclist without scoring, and FTS5 skips older rowids (benchmarks/library_scale.py).
            # Ranking happens in a subquery and only the LIMIT rows are joined: ordering by bm25()
            # in SQLite's own sorter is ~1.5x faster than FTS5's `ORDER BY rank`, same order.
            rows = self.db.execute(
                "SELECT prompts.* FROM (SELECT rowid AS id, bm25(prompts_fts) AS score FROM prompts_fts "
                "WHERE prompts_fts MATCH :q AND rowid >= coalesce((SELECT rowid FROM prompts_fts "
                "WHERE prompts_fts MATCH :q ORDER BY rowid DESC LIMIT 1 OFFSET :skip), 0) "
                "ORDER BY score LIMIT :limit) AS hits JOIN prompts USING (id) ORDER BY hits.score",
                {"q": fts_query, "skip": setting("SEARCH_RANK_LIMIT") - 1, "limit": limit},
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise
            raise BadParameter(f"cannot search for {query!r}: {exc}") from None
        found = [decode(self._row_dict("prompts", r), PROMPT_JSON) for r in rows]
        if len(found) < limit:
            found += self._prompts_by_rating_note(fts_query, limit - len(found), {p["id"] for p in found})
        return found

    def _prompts_by_rating_note(self, fts_query: str, limit: int, skip: set[int]) -> list[dict[str, Any]]:
        """Prompts whose images' rating notes match FTS_QUERY (after those matched by their own text),
        the most recently noted first; none on a library without the notes index."""
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'ratings_fts'").fetchone():
            return []
        ids = [pid for (pid,) in self.db.execute(
            "SELECT generations.prompt_id FROM ratings_fts JOIN ratings ON ratings.id = ratings_fts.rowid "
            "JOIN generations ON generations.id = ratings.generation_id WHERE ratings_fts MATCH ? "
            "GROUP BY generations.prompt_id ORDER BY max(ratings.id) DESC LIMIT ?", [fts_query, limit + len(skip)])
            if pid not in skip][:limit]
        return [self.get_prompt(pid) for pid in ids]

    def list_prompts(self, limit: int = 50, offset: int = 0, starred_only: bool = False) -> list[dict[str, Any]]:
        """Saved prompts, newest first.

        :param offset: skip this many of the newest (for paging).
        :param starred_only: only prompts marked with a star.
        """
        where = "WHERE starred = 1 " if starred_only else ""
        rows = self.db.execute(
            f"SELECT * FROM prompts {where}ORDER BY id DESC LIMIT ? OFFSET ?", [limit, offset]
        ).fetchall()
        return [decode(self._row_dict("prompts", r), PROMPT_JSON) for r in rows]

    def count_prompts(self, starred_only: bool = False) -> int:
        where = " WHERE starred = 1" if starred_only else ""
        return self.db.execute(f"SELECT count(*) FROM prompts{where}").fetchone()[0]

    def delete_prompt(self, ref: int | str, with_generations: bool = False) -> dict[str, Any]:
        """Delete a prompt (id or name), and with WITH_GENERATIONS its generation rows and their
        ratings, in one transaction. Refused, with nothing changed, for a prompt that is a
        variant of an experiment (its votes and cells belong to the experiment) or that has
        iterations (their lineage would lose its root). Image files stay: content-addressed,
        they may serve other rows, and `doctor --fix` quarantines those no row refers to.
        """
        with self.write() as db:
            prompt = self.get_prompt(ref)
            prompt_id, label = prompt["id"], prompt["name"] or str(prompt["id"])
            generations = self._check_deletable(db, prompt_id, label)
            if generations and not with_generations:
                raise BadParameter(f"prompt {label!r} has {generations} image{'s' if generations > 1 else ''}; pass "
                                   "--with-images to delete their rows too")
            self._release_files(db, "prompt_id = ?", [prompt_id])
            ratings = db.execute("DELETE FROM ratings WHERE generation_id IN (SELECT id FROM generations WHERE "
                                 "prompt_id = ?)", [prompt_id]).rowcount
            db.execute("DELETE FROM generations WHERE prompt_id = ?", [prompt_id])
            db.execute("DELETE FROM prompts WHERE id = ?", [prompt_id])
        return {"id": prompt_id, "name": prompt["name"], "generations_deleted": generations,
                "ratings_deleted": ratings}

    @staticmethod
    def _check_deletable(db, prompt_id: int, label: str) -> int:
        """Refuse to delete a variant, a prompt with iterations or with voted images; return its image count."""
        experiment = db.execute(
            "SELECT experiments.name FROM variants JOIN experiments ON experiments.id = variants.experiment_id "
            "WHERE variants.prompt_id = ? ORDER BY experiments.id LIMIT 1", [prompt_id]).fetchone()
        if experiment:
            raise BadParameter(f"prompt {label!r} is a variant of experiment {experiment[0]!r}; its images and "
                               "votes belong to the experiment, so the prompt is kept")
        children = db.execute("SELECT count(*) FROM prompts WHERE parent_id = ?", [prompt_id]).fetchone()[0]
        if children:
            raise BadParameter(f"prompt {label!r} has {children} iteration{'s' if children > 1 else ''} "
                               f"(`promptkit history {label}`); delete those first")
        voted = db.execute(
            "SELECT count(*) FROM votes WHERE left_generation_id IN (SELECT id FROM generations WHERE prompt_id = "
            ":p) OR right_generation_id IN (SELECT id FROM generations WHERE prompt_id = :p)",
            {"p": prompt_id}).fetchone()[0]
        if voted:
            raise BadParameter(f"prompt {label!r} has images that were voted on in an experiment; it is kept")
        return db.execute("SELECT count(*) FROM generations WHERE prompt_id = ?", [prompt_id]).fetchone()[0]

    def set_starred(self, ref: int | str, starred: bool) -> dict[str, Any]:
        """Star or unstar a prompt (id or name); return the updated prompt."""
        with self.write() as db:
            prompt_id = self.get_prompt(ref)["id"]
            # Plain SQL: sqlite-utils' update() commits on its own, which would end this transaction early.
            db.execute("UPDATE prompts SET starred = ? WHERE id = ?", [1 if starred else 0, prompt_id])
        return self.get_prompt(prompt_id)

    def child_prompts(self, prompt_id: int) -> list[dict[str, Any]]:
        """The prompts iterated from PROMPT_ID (its direct children), oldest first."""
        rows = self.db.execute("SELECT * FROM prompts WHERE parent_id = ? ORDER BY id", [prompt_id])
        return [decode(self._row_dict("prompts", r), PROMPT_JSON) for r in rows]

    def prompt_lineage(self, prompt_id: int) -> dict[str, list[dict[str, Any]]]:
        """The prompts this one was iterated from (oldest first) and those iterated from it."""
        ancestors: list[dict[str, Any]] = []
        seen = {prompt_id}
        parent_id = self.get_prompt(prompt_id)["parent_id"]
        while parent_id is not None and parent_id not in seen:  # `seen` guards against a hand-made cycle
            seen.add(parent_id)
            parent = self.get_prompt(parent_id)
            ancestors.insert(0, parent)
            parent_id = parent["parent_id"]
        return {"ancestors": ancestors, "children": self.child_prompts(prompt_id)}

    def summarize_prompts(self, prompt_ids: list[int], covers: int = 4) -> dict[int, dict[str, Any]]:
        """Per prompt: how many images, how many rated, the mean of each image's current rating
        (its latest, see `current_ratings`), and up to COVERS generations to show for it (best
        rated first, then newest)."""
        summaries = {pid: {"generations": 0, "rated": 0, "mean_stars": None, "covers": []} for pid in prompt_ids}
        if not prompt_ids:
            return summaries
        marks = placeholders(prompt_ids)
        rows = self.db.execute(
            f"""
            WITH latest AS ({current_rating_sql(f"SELECT id FROM generations WHERE prompt_id IN ({marks})")})
            SELECT generations.prompt_id, generations.id, generations.image_sha256, latest.stars
            FROM generations LEFT JOIN latest ON latest.generation_id = generations.id
            WHERE generations.prompt_id IN ({marks})
            ORDER BY generations.prompt_id, coalesce(latest.stars, 0) DESC, generations.id DESC
            """,
            [*prompt_ids, *prompt_ids],
        ).fetchall()
        stars_by_prompt: dict[int, list[int]] = {}
        for prompt_id, generation_id, sha256, stars in rows:
            summary = summaries[prompt_id]
            summary["generations"] += 1
            if stars is not None:
                stars_by_prompt.setdefault(prompt_id, []).append(stars)
            if len(summary["covers"]) < covers:
                summary["covers"].append({"id": generation_id, "image_sha256": sha256, "stars": stars})
        for prompt_id, stars in stars_by_prompt.items():
            summaries[prompt_id]["rated"] = len(stars)
            summaries[prompt_id]["mean_stars"] = sum(stars) / len(stars)
        return summaries

    def show_prompt(self, ref: int | str) -> dict[str, Any]:
        """A prompt with its generations, each with `stars` (its current rating: the latest, or
        None), `ratings` (every rating given, oldest first: the history) and `note` (the latest
        rating note given, or "")."""
        prompt = self.get_prompt(ref)
        generations = [
            decode(self._row_dict("generations", r), ("batch", "params", "versions"))
            for r in self.db.execute("SELECT * FROM generations WHERE prompt_id = ? ORDER BY id", [prompt["id"]])
        ]
        ratings: dict[int, list[dict[str, Any]]] = {}
        for r in self.db.execute(
            "SELECT ratings.* FROM ratings JOIN generations ON generations.id = ratings.generation_id "
            "WHERE generations.prompt_id = ? ORDER BY ratings.id",
            [prompt["id"]],
        ):
            rating = self._row_dict("ratings", r)
            ratings.setdefault(rating["generation_id"], []).append(rating)
        current = self.current_ratings([gen["id"] for gen in generations])
        for gen in generations:
            gen["ratings"] = ratings.get(gen["id"], [])
            gen["stars"] = current.get(gen["id"])
            # the note shown with the image: the latest rating's that has one ("best sky")
            gen["note"] = next((r["note"] for r in reversed(gen["ratings"]) if r.get("note")), "")
        prompt["generations"] = generations
        return prompt

    def style_images(self, style_names: list[str], per_style: int = 6) -> dict[str, list[dict[str, Any]]]:
        """For each style preset, up to PER_STYLE of the library's images whose prompt used it
        (newest first); an image recorded twice (say, also as an A/B cell) is shown once."""
        images: dict[str, list[dict[str, Any]]] = {}
        rows = self.db.execute(
            "SELECT style.value, generations.id, generations.image_sha256, generations.prompt_id "
            "FROM prompts JOIN json_each(prompts.fields, '$.style') AS style "
            "JOIN generations ON generations.prompt_id = prompts.id "
            "WHERE json_valid(prompts.fields) AND json_type(prompts.fields, '$.style') = 'array' "
            "ORDER BY generations.id DESC")
        wanted = set(style_names)
        shown: set[tuple[str, str]] = set()
        for style, gen_id, sha, prompt_id in rows:
            if style in wanted and (style, sha) not in shown and len(images.setdefault(style, [])) < per_style:
                shown.add((style, sha))
                images[style].append({"id": gen_id, "image_sha256": sha, "prompt_id": prompt_id})
        return images
