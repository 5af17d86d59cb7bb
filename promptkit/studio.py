"""The prompt studio's logic: live previews, saving what is generated (as a child when it changed),
generation jobs on an in-process warm engine, parent-versus-child comparisons, and preset look-ups.

The web page (`promptkit.web.studio`) only parses requests and calls these; no torch is imported
here until a job runs on the engine thread.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import BadParameter, NotFound, PromptkitError
from .library import Library
from .lineage import field_diff, text_diff
from .lint import lint_prompt
from .service.generation import job_spec
from .templates import Fields, Prompt, PromptBuilder

DEFAULT_SEEDS = (1, 2, 3, 4)
MAX_SEEDS = 16
KEPT_JOBS = 200  # finished jobs remembered for their status; older ones are forgotten


def one_line(text: str) -> str:
    """A message as one line: a template error must fit the line under the form."""
    return " ".join(str(text).split())


def preview(builder: PromptBuilder, fields: Fields, template: str | None, model: str | None = None, *,
            family: str | None = None, guidance: float | None = None, true_cfg: float | None = None) -> dict[str, Any]:
    """The rendered prompts and their lint for the model's family (or FAMILY), with what the page needs to
    follow that family (`family`: guidance label, encoders' windows, whether the negative is read); `error`
    (one line) when the template cannot render. TEMPLATE None: the family's default template."""
    from .family_rules import default_template, family_for, family_summary

    try:
        fam = family_for(model, family)
        prompt = builder.render(fields, template or default_template(fam))
    except PromptkitError as exc:
        return {"error": one_line(exc), "positive": None, "negative": None, "lint": None, "family": None}
    report = lint_prompt(prompt.positive, prompt.negative, model=model, notes=prompt.notes,
                         family=fam.key if fam else None, guidance=guidance, true_cfg=true_cfg)
    return {"error": None, "positive": prompt.positive, "negative": prompt.negative, "lint": report.to_dict(),
            "template": prompt.template, "family": family_summary(fam, guidance, true_cfg, model) if fam else None}


def _same_prompt(saved: dict[str, Any], prompt: Prompt) -> bool:
    return (saved["template"] == prompt.template and saved["positive"] == prompt.positive
            and saved["negative"] == prompt.negative and (saved["fields"] or {}) == prompt.fields.to_dict())


def save_for_generation(library: Library, builder: PromptBuilder, fields: Fields, template: str,
                        parent_id: int | None = None) -> tuple[dict[str, Any], bool]:
    """The prompt to generate: PARENT itself when nothing changed, else a new prompt saved as its
    child (lineage kept). Returns (prompt row, whether it was created)."""
    prompt = builder.render(fields, template)
    parent = library.get_prompt(parent_id) if parent_id is not None else None
    if parent is not None and _same_prompt(parent, prompt):
        return parent, False
    tags = list(parent.get("tags") or []) if parent else []
    new_id = library.save_prompt(prompt, parent_id=parent["id"] if parent else None, tags=tags)
    return library.get_prompt(new_id), True


def latest_by_seed(library: Library, prompt_id: int, seeds: list[int]) -> dict[int, dict[str, Any]]:
    """The newest generation of PROMPT_ID for each of SEEDS (outside experiments first)."""
    found: dict[int, dict[str, Any]] = {}
    for gen in library.generations_by_seed(prompt_id, seeds):
        found[gen["seed"]] = gen
    return found


def compare(library: Library, parent_id: int, child_id: int, seeds: list[int]) -> dict[str, Any]:
    """Parent and child side by side: what changed (fields, words) and their images per seed."""
    parent, child = library.get_prompt(parent_id), library.get_prompt(child_id)
    parent_images, child_images = latest_by_seed(library, parent_id, seeds), latest_by_seed(library, child_id, seeds)
    return {
        "parent": {"id": parent["id"], "positive": parent["positive"], "negative": parent["negative"]},
        "child": {"id": child["id"], "positive": child["positive"], "negative": child["negative"]},
        "fields": field_diff(parent["fields"] or {}, child["fields"] or {}),
        "positive": text_diff(parent["positive"], child["positive"]),
        "negative": text_diff(parent["negative"], child["negative"]),
        "pairs": [{"seed": s, "parent": parent_images.get(s), "child": child_images.get(s)} for s in seeds],
    }


def style_images(library: Library, style_names: list[str], per_style: int = 6) -> dict[str, list[dict[str, Any]]]:
    """For each style preset, up to PER_STYLE of the library's images whose prompt used it (newest first)."""
    return library.style_images(style_names, per_style)


def free_experiment_name(library: Library, base: str) -> str:
    """BASE, or BASE-2, BASE-3 … whichever is not taken yet."""
    for number in itertools.count(1):
        name = base if number == 1 else f"{base}-{number}"
        if not library.experiment_exists(name):
            return name
    raise AssertionError("unreachable")


# -- jobs on the warm engine -----------------------------------------------------------


@dataclass
class StudioJob:
    id: int
    prompt_id: int
    parent_id: int | None
    seeds: list[int]
    floor: int  # the highest generation id before the job: its images are the rows above it
    events: queue.Queue
    state: str = "queued"  # queued, running, done, failed
    done: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None


class StudioEngine:
    """Generation jobs for the studio on one in-process `EngineWorker` (created on first use).

    :param worker: a started worker, typically with the model preloaded (`promptkit serve --model`).
    :param engine_options: `EngineOptions` fields for every job (device, dtype, …).
    """

    def __init__(self, worker=None, engine_options: dict[str, Any] | None = None) -> None:
        self.worker = worker
        self.engine_options = dict(engine_options or {})
        self.jobs: dict[int, StudioJob] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _worker(self):
        with self._lock:
            if self.worker is None:
                from .worker import EngineWorker

                self.worker = EngineWorker()
            return self.worker

    def submit_generation(self, library: Library, model: str, prompt: dict[str, Any], parent_id: int | None,
                          params: dict[str, Any], seeds: list[int]) -> StudioJob:
        """Queue PROMPT on SEEDS; one image per pipeline call, so each appears as soon as it is saved."""
        floor = library.newest_generation_id()
        spec = job_spec("generate", db=str(library.path.resolve()), model=model, engine_options=self.engine_options,
                        prompt_id=prompt["id"], params=params, seeds=list(seeds), batch_size=1)
        with self._lock:
            job = StudioJob(id=next(self._ids), prompt_id=prompt["id"], parent_id=parent_id, seeds=list(seeds),
                            floor=floor, events=queue.Queue())
            self.jobs[job.id] = job
            for old in sorted(self.jobs)[:-KEPT_JOBS]:
                del self.jobs[old]
        self._worker().submit(spec, job.events)
        return job

    def job(self, job_id: int) -> StudioJob:
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no studio job {job_id} (jobs are kept while the page's server runs)")
        with self._lock:  # two tabs polling the same job drain its events one at a time
            while True:
                try:
                    event = job.events.get_nowait()
                except queue.Empty:
                    return job
                if "progress" in event:
                    job.state, job.done = "running", event["progress"][0]
                elif "result" in event:
                    job.state, job.done, job.finished = "done", len(job.seeds), time.monotonic()
                    job.notes = list(event["result"].get("notes") or [])
                elif "error" in event:
                    job.state, job.error, job.finished = "failed", one_line(event["error"]), time.monotonic()

    def job_images(self, library: Library, job: StudioJob) -> list[dict[str, Any]]:
        """The images the job has saved so far, one per seed, in seed-list order."""
        found: dict[int, dict[str, Any]] = {}
        for gen in library.generations_by_seed(job.prompt_id, job.seeds, after_id=job.floor, outside_experiments=True):
            found.setdefault(gen["seed"], gen)
        return [found[s] for s in job.seeds if s in found]

    def run_experiment_cells(self, db_path: str, model: str, name: str) -> dict[str, Any]:
        """Generate an experiment's missing cells on the warm engine and wait for them."""
        events: queue.Queue = queue.Queue()
        spec = job_spec("ab_run", db=db_path, model=model, engine_options=self.engine_options, name=name,
                        batch_size=4)
        self._worker().submit(spec, events)
        while True:
            event = events.get()
            if "result" in event:
                return event["result"]
            if "error" in event:
                raise PromptkitError(one_line(event["error"]))


def parse_seed_list(seeds: list[int]) -> list[int]:
    """Seeds as the page sends them: 1 to MAX_SEEDS distinct whole numbers in 0 … 2**32-1."""
    if not seeds:
        raise BadParameter("the seed list is empty; add a seed or press New seeds")
    if len(seeds) > MAX_SEEDS:
        raise BadParameter(f"at most {MAX_SEEDS} seeds at a time, got {len(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise BadParameter("the seed list repeats a seed")
    for seed in seeds:
        if not 0 <= seed < 2**32:
            raise BadParameter(f"seed {seed} is outside 0 … 4294967295")
    return list(seeds)
