"""Generation jobs: batches through the engine, images and rows into the library.

PNG encoding, hashing and database writes run on a writer thread with a bounded queue,
so they overlap the next batch's denoising instead of sitting on its path.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import BadParameter, LibraryProblem, PromptkitError
from .inputs import file_sha256, resolve_inputs
from .library import Library, utc_now
from .params import GenerationParams, check_batch_size
from .pnginfo import encode_png
from .records import (DERIVED_PARAMS, Batch, GenerationInputs, GenerationRecord, ModelRef,  # noqa: F401
                      PromptText, Sampling, recorded_inputs)

Progress = Callable[[int, int], None]


@dataclass
class GenerationJob:
    """One prompt on a list of seeds with one set of parameters."""

    prompt: dict[str, Any]  # a prompts row (id, positive, negative, template, ...)
    params: GenerationParams
    seeds: list[int]
    batch_size: int | None = 1  # None: chosen by the engine from free memory
    experiment_id: int | None = None
    variant: str | None = None

    def batches(self) -> list[list[int]]:
        check_batch_size(self.batch_size)
        assert self.batch_size is not None, "resolve an automatic batch size first"
        return [self.seeds[i : i + self.batch_size] for i in range(0, len(self.seeds), self.batch_size)]


@dataclass
class JobOutcome:
    generations: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, summed over batches
    notes: list[str] = field(default_factory=list)  # warnings for the user (OOM retries, black images)


def generation_record(job: GenerationJob, engine_info: dict[str, Any], seed: int, batch: list[int], index: int,
                      size: tuple[int, int], info: dict[str, Any] | None = None) -> GenerationRecord:
    """Everything needed to reproduce one image; no timestamps, so it is deterministic."""
    info = info or {}
    params = job.params
    return GenerationRecord(
        prompt=PromptText.from_row(job.prompt),
        model=ModelRef.from_ref(engine_info["model"], engine_info["model_hash"], engine_info.get("family")),
        sampling=Sampling(params.sampler, params.steps, params.cfg, size[0], size[1], params.noise_device),
        seed=int(seed),
        batch=Batch(size=len(batch), index=index, seeds=[int(s) for s in batch]),
        inputs=GenerationInputs.from_extra(params.extra),
        mode=info.get("mode", "txt2img"),
        prompt_mode=info.get("prompt_mode", "plain"),
        flags=list(params.extra.get("flags") or []),
        family_info=dict(info.get("family_info") or {}),
        device=engine_info["device"],
        dtype=engine_info["dtype"],
        versions=engine_info["versions"],
        # A backend that takes no seed (a remote API) says so: its images are unpaired replicates.
        source=engine_info.get("source", "promptkit"),
        reproducible=bool(engine_info.get("reproducible", True)),
    )


BLACK_IMAGE_FLAG = ("all-black image: the known fp16 VAE overflow (NaN) is the usual cause; "
                    "try --dtype float32 or an fp16-safe VAE")


def image_flags(image) -> list[str]:
    """Problems visible in the pixels: an all-black image is what a NaN decode becomes."""
    extrema = image.convert("RGB").getextrema()
    if all(high == 0 for _low, high in extrema):
        return [BLACK_IMAGE_FLAG]
    return []


class _Writer(threading.Thread):
    """Encodes, stores and records images off the denoising path.

    One writer can serve several jobs in turn (an experiment's variants), so the last batch of
    one variant is written while the next variant denoises.
    """

    def __init__(self, library_path, max_pending: int) -> None:
        super().__init__(name="promptkit-writer", daemon=True)
        self.library_path = library_path
        self.queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self.results: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.timings: dict[str, float] = {"png_encode": 0.0, "database": 0.0}
        self.warnings: list[str] = []

    def run(self) -> None:
        library = None
        try:
            library = Library(self.library_path)
            while True:
                item = self.queue.get()
                if item is None:
                    return
                job, image, record, seconds = item
                started = time.perf_counter()
                flags = image_flags(image)
                if flags:
                    record.flags = flags
                    self.warnings.append(f"seed {record.seed}: {'; '.join(flags)}")
                png = encode_png(image, record)
                encoded = time.perf_counter()
                sha, file = library.store_image(png)
                gen_id = library.add_generation(record.to_row(
                    prompt_id=job.prompt["id"], experiment_id=job.experiment_id, variant=job.variant,
                    image_sha256=sha, image_path=library.relative_image_path(file), seconds=seconds,
                    created_at=utc_now()))
                self.timings["png_encode"] += encoded - started
                self.timings["database"] += time.perf_counter() - encoded
                self.results.append({"id": gen_id, "seed": record.seed, "image_path": str(file),
                                     "image_sha256": sha})
        except BaseException as exc:  # reported to the main thread
            self.error = exc
            # Keep draining so the producer never blocks on a dead writer.
            while True:
                try:
                    if self.queue.get(timeout=0.1) is None:
                        return
                except queue.Empty:
                    continue
        finally:
            if library is not None:
                library.close()

    def put(self, item) -> None:
        if self.error is not None:
            raise self._failure()
        self.queue.put(item)

    def finish(self) -> None:
        """Write what is queued, then stop the thread."""
        self.queue.put(None)
        self.join()

    def collect(self, outcome: JobOutcome) -> None:
        """After finish(): the rows written, the writer's timings and warnings, or its error."""
        if self.error is not None:
            raise self._failure()
        outcome.generations = sorted(self.results, key=lambda r: r["id"])
        for key, value in self.timings.items():
            outcome.timings[key] = outcome.timings.get(key, 0.0) + value
        outcome.notes.extend(self.warnings)

    def _failure(self) -> PromptkitError:
        error = self.error
        if isinstance(error, PromptkitError):
            return error
        failure = LibraryProblem(f"saving images to {str(self.library_path)!r} failed: "
                                 f"{type(error).__name__}: {error}")
        failure.__cause__ = error
        return failure


def start_writer(library: Library, batch_size: int | None) -> _Writer:
    """A writer thread whose queue holds about two batches, so memory stays flat."""
    writer = _Writer(library.path, max_pending=max(2, 2 * (batch_size or 8)))
    writer.start()
    return writer


class StopAfterBatch:
    """First Ctrl-C: finish and save the current batch, then stop. Second: stop now."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "StopAfterBatch":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


OOM_HINT = ("out of GPU memory even at batch size 1: try --cpu-offload, --attention-slicing, --vae-slicing "
            "or a smaller --width/--height")


class OutOfMemory(PromptkitError):
    """The GPU ran out of memory at batch size 1."""


def _denoise(engine, job: GenerationJob, batch: list[int], profile: bool, notes: list[str], inputs=None):
    """Run BATCH; on CUDA out-of-memory retry the same seeds in halves, down to one image.

    Yields (sub_batch, result): each image is recorded with the batch it was really made in.
    """
    try:
        yield batch, engine.run_batch(job.prompt["positive"], job.prompt["negative"], batch, job.params,
                                      profile=profile, inputs=inputs)
        return
    except Exception as exc:
        if not engine.is_out_of_memory(exc):
            raise
    engine.free_memory()
    if len(batch) == 1:
        raise OutOfMemory(OOM_HINT) from None
    half = (len(batch) + 1) // 2
    notes.append(f"out of GPU memory at batch size {len(batch)}; retried as {half} + {len(batch) - half}")
    for part in (batch[:half], batch[half:]):
        yield from _denoise(engine, job, part, profile, notes, inputs)


def check_lora_tags(positive: str, extra: dict[str, Any]) -> None:
    """Refuse a prompt whose `<lora:NAME>` tags no LoRA of the job stands for: the engine strips the
    tags from the text, so running it would quietly leave the LoRA out."""
    from .inputs import lora_tag_record_name
    from .weighting import lora_tags

    loaded = {lora.get("name") for lora in extra.get("loras") or []}
    for name, _scale in lora_tags(positive):
        if lora_tag_record_name(name) not in loaded:
            raise BadParameter(f"the prompt's <lora:{name}> tag was not resolved to a LoRA file for this job: "
                               "generate it with `promptkit generate` or `iterate` and --lora-dir (or "
                               "PROMPTKIT_LORA_DIR)")


def run_job(library: Library, engine, job: GenerationJob, progress: Progress | None = None,
            profile: bool = False, writer: _Writer | None = None) -> JobOutcome:
    """Generate every seed of JOB in batches; store each image and its row as it comes.

    A row is written only after its PNG is safely on disk. With WRITER (see start_writer) the
    images go to that shared writer and the caller collects the rows once it has finished it;
    otherwise this job starts its own and returns with every row written.
    """
    # 1. Check inputs before any work (a flow-matching family resolves its sampler: `Euler` for the default)
    if hasattr(engine, "resolve_params"):
        job.params = engine.resolve_params(job.params)
    if job.batch_size is None:
        job.batch_size = engine.suggest_batch_size(job.params, len(job.seeds))
    batches = job.batches()
    if not job.seeds:
        raise PromptkitError("no seeds to generate")
    check_lora_tags(job.prompt["positive"], job.params.extra)
    from .families import check_family_extra

    check_family_extra(getattr(engine, "family", None), job.params.extra, engine.model)
    engine.check_request(job.params.extra)
    inputs = resolve_inputs(library, job.params.extra)
    engine_info = engine.describe()
    total, done = len(job.seeds), 0
    own_writer = writer is None
    if writer is None:
        writer = start_writer(library, job.batch_size)
    outcome = JobOutcome()
    try:
        with StopAfterBatch() as stop:
            for batch in batches:
                # 2. Denoise one batch (split in halves if the GPU runs out of memory)
                for sub_batch, result in _denoise(engine, job, batch, profile, outcome.notes, inputs):
                    size = (result.info["width"], result.info["height"])
                    per_image = result.seconds / len(sub_batch)
                    for key, value in result.info.get("timings", {}).items():
                        outcome.timings[key] = outcome.timings.get(key, 0.0) + value
                    # 3. Hand the images to the writer and go on with the next batch
                    for index, (seed, image) in enumerate(zip(sub_batch, result.images)):
                        record = generation_record(job, engine_info, seed, sub_batch, index, size, result.info)
                        writer.put((job, image, record, per_image))
                    done += len(sub_batch)
                    if progress:
                        progress(done, total)
                if stop.requested:
                    outcome.interrupted = True
                    break
    finally:
        if own_writer:
            writer.finish()
    if own_writer:
        writer.collect(outcome)
    return outcome


def _lora_sources(extra: dict[str, Any], inputs, generation_id: int, notes: list[str]) -> bool:
    """Check each recorded LoRA against the library's copy and its path; note what differs. True when
    a LoRA must load from a file whose bytes differ from the recorded ones (no copy of them is kept)."""
    from pathlib import Path

    changed = False
    for lora in extra.get("loras") or []:
        file, sha = Path(lora["path"]), lora["sha256"]
        now = file_sha256(file) if file.is_file() else None
        copy = inputs.lora_files.get(sha)
        if copy and file_sha256(Path(copy)) != sha:
            notes.append(f"the library's copy of LoRA {lora['name']!r} ({copy}) is damaged; run `promptkit doctor`")
            del inputs.lora_files[sha]
            copy = None
        if copy:
            if now is None:
                notes.append(f"LoRA file {lora['path']!r} is gone; used the library's copy (sha256 {sha[:12]})")
            elif now != sha:
                notes.append(f"LoRA file {lora['path']!r} changed since: stored sha256 {sha[:12]}, now {now[:12]}; "
                             "used the library's copy")
            continue
        if now is None:
            raise PromptkitError(f"LoRA {lora['name']!r} used by generation {generation_id} is gone: "
                                 f"{lora['path']!r}, and the library has no copy of it")
        if now != sha:
            changed = True
            notes.append(f"LoRA file {lora['path']!r} changed since: stored sha256 {sha[:12]}, now {now[:12]}; "
                         "the library has no copy, so the changed file was used")
    return changed


def _differences(gen: dict[str, Any], info: dict[str, Any]) -> list[str]:
    notes = []
    for key in ("device", "dtype", "model_hash"):
        if gen.get(key) and gen[key] != info[key]:
            notes.append(f"{key} differs: stored {gen[key]!r}, now {info[key]!r}"
                         + (f" (model {gen['model']!r} changed since)" if key == "model_hash" else ""))
    if gen.get("versions") and gen["versions"] != info["versions"]:
        notes.append(f"library versions differ: stored {gen['versions']}, now {info['versions']}")
    return notes


def reproduce(library: Library, engine, generation_id: int) -> dict[str, Any]:
    """Regenerate a stored image by re-running the batch it was made in; compare sha256.

    What to run comes from the library row (models and LoRAs by their local paths, which the PNG
    does not carry). Init images, masks, control images and LoRA files come from the library (a LoRA
    recorded before the library kept copies loads from its path); a LoRA file whose path is gone or
    holds other bytes since is named in the notes.
    """
    import hashlib
    from pathlib import Path

    gen = library.get_generation(generation_id)
    stored = GenerationRecord.from_row(gen, library.get_prompt(gen["prompt_id"]))
    extra = stored.extra()
    sampling = stored.sampling
    params = GenerationParams(sampler=sampling.sampler, steps=sampling.steps, cfg=sampling.cfg, width=sampling.width,
                              height=sampling.height, noise_device=sampling.noise_device, extra=extra)
    prompt = library.get_prompt(gen["prompt_id"])
    job = GenerationJob(prompt=prompt, params=params, seeds=list(stored.batch.seeds),
                        batch_size=len(stored.batch.seeds))
    inputs = resolve_inputs(library, extra)
    notes: list[str] = []
    changed = _lora_sources(extra, inputs, generation_id, notes)
    if changed:
        # The adapter is cached by its recorded hash; the changed file must load fresh.
        engine.unload_loras()
        extra["loras"] = [{**lora, "sha256": file_sha256(Path(lora["path"]))}
                          if lora["sha256"] not in inputs.lora_files else lora for lora in extra["loras"]]
    result = engine.run_batch(prompt["positive"], prompt["negative"], job.seeds, params, inputs=inputs)
    if changed:
        extra["loras"] = stored.extra().get("loras")
    index = stored.batch.index
    record = generation_record(job, engine.describe(), job.seeds[index], job.seeds, index,
                               (result.info["width"], result.info["height"]), result.info)
    record.flags = image_flags(result.images[index])
    sha = hashlib.sha256(encode_png(result.images[index], record)).hexdigest()
    notes += _differences(gen, engine.describe())
    match = sha == gen["image_sha256"]
    pixels_match = match or _same_pixels(library.image_path(gen), result.images[index])
    if pixels_match and not match:
        notes.append("the pixels are identical; only the PNG's metadata differs (an image written by an older "
                     "promptkit, whose chunks carried local paths)")
    return {"id": gen["id"], "stored_sha256": gen["image_sha256"], "new_sha256": sha, "match": match,
            "pixels_match": pixels_match, "notes": notes}


def _same_pixels(stored_file, image) -> bool:
    """Whether the stored PNG decodes to exactly IMAGE's pixels (False when it cannot be read)."""
    from PIL import Image

    try:
        with Image.open(stored_file) as stored:
            return stored.convert("RGB").tobytes() == image.convert("RGB").tobytes() and stored.size == image.size
    except OSError:
        return False
