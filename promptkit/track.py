"""`promptkit.track(pipe)`: a diffusers pipeline you already hold, recorded in the library on every call.

    import promptkit
    from diffusers import StableDiffusionPipeline

    pipe = promptkit.track(StableDiffusionPipeline.from_pretrained("./tiny-sd"), library="library.db")
    out = pipe("a lighthouse at dusk", num_inference_steps=20, generator=promptkit.seeded([1, 2]),
               num_images_per_prompt=2)
    out.images, out.generations   # the PIL images; the library rows (id, seed, image_path, ...)

When the seeds are known (``seeds=[...]``, or fresh generators such as `seeded` makes) and the call
asks only for what promptkit records, the call runs through the same engine and job as
`promptkit generate` (`generation.run_job` on the pipeline you hold): the same prompt, seeds,
parameters and batch give the same rows and the same image sha256. Otherwise (no generator, a
generator already used, one generator for several images, a scheduler or argument promptkit cannot
record) the pipeline runs exactly as called and every image is stored with reproducible=0 and a flag
that says why: never silently. The pipeline's family is looked up in `promptkit.families` and its
backend among the plugins' backends (`BackendSpec.families`), so a family works here once a
backend for it is installed: the built-in one adopts the Stable Diffusion pipelines (`engine.stable_diffusion`)
and the flow-matching ones (SD 3.5, FLUX.1, FLUX.2 klein, Z-Image, Qwen-Image, Chroma: `engine.flow`). For
those, the guidance is the family's own argument (`Family.guidance_arg`: `guidance_scale`, or `true_cfg_scale`
for Qwen-Image), FLUX.1's `true_cfg_scale` and any `max_sequence_length` are recorded as `--true-cfg` and
`--max-sequence-length` record them, and a negative prompt is never passed to a pipeline that takes none.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BadParameter, ModelProblem

if TYPE_CHECKING:
    from .library import Library

TRACKED_TEMPLATE = "tracked"
UNTRACKED_SOURCE = "diffusers"
UNTRACKED_FLAG = "untracked seed: {reason}; promptkit cannot reproduce this image"
# Arguments of a pipeline call that promptkit records (everything else makes a call untracked).
RECORDED = {"prompt", "negative_prompt", "num_inference_steps", "guidance_scale", "width", "height", "generator",
            "image", "mask_image", "strength", "num_images_per_prompt", "output_type"}
# A flow-matching family's call arguments that promptkit records in `params.extra`, as `promptkit generate`'s
# --true-cfg and --max-sequence-length do (`families.FAMILY_OPTIONS` says which families take each).
FLOW_EXTRA = ("true_cfg_scale", "max_sequence_length")


def seeded(seeds: list[int] | str | int) -> list[Any]:
    """One fresh CPU `torch.Generator` per seed, as promptkit makes them: pass the list as ``generator=``
    to a tracked pipeline (with ``num_images_per_prompt=len(seeds)``) and its seeds are recorded.

    :param seeds: a list, one seed, or the text forms "1,2,3", "1-8".
    """
    import torch

    from .params import parse_seeds

    seed_list = parse_seeds(seeds) if isinstance(seeds, str) else [seeds] if isinstance(seeds, int) else seeds
    return [torch.Generator("cpu").manual_seed(int(seed)) for seed in seed_list]


def known_seed(generator: Any) -> int | None:
    """The seed of a generator still in the state `manual_seed` left it in, else None (already used,
    or seeded some other way): only then does promptkit know the noise it will give."""
    import torch

    if not isinstance(generator, torch.Generator):
        return None
    seed = generator.initial_seed()
    fresh = torch.Generator(generator.device).manual_seed(seed)
    return seed if torch.equal(generator.get_state(), fresh.get_state()) else None


def sampler_of(scheduler: Any) -> str | None:
    """promptkit's sampler name for SCHEDULER (class and Karras/algorithm switches), or None. A flow-matching
    scheduler is named as the flow families name it (`engine.flow.FLOW_SAMPLERS`: FlowMatchEulerDiscrete is Euler)."""
    from .params import SAMPLERS

    if type(scheduler).__name__.startswith("FlowMatch"):
        from .engine.flow import FLOW_SAMPLERS

        return next((name for name, cls in FLOW_SAMPLERS.items() if cls == type(scheduler).__name__), None)

    defaults = {"use_karras_sigmas": False, "algorithm_type": "dpmsolver++"}
    config = dict(scheduler.config)
    for name, (class_name, extra) in SAMPLERS.items():
        if class_name == type(scheduler).__name__ and all(
                config.get(key, default) == extra.get(key, default) for key, default in defaults.items()
                if key in config or key in extra):
            return name
    return None


@dataclass
class TrackedOutput:
    """What a tracked call returns: the images (as the pipeline's output has them) and the library rows."""

    images: list[Any]
    generations: list[dict[str, Any]]
    reproducible: bool
    notes: list[str] = field(default_factory=list)
    nsfw_content_detected: Any = None

    def __getitem__(self, index: int) -> Any:  # `pipe(...)[0]` is the images, as with diffusers outputs
        return (self.images, self.nsfw_content_detected)[index]


def track(pipe: Any, library: "Library | str | Path | None" = None, *, model: str | None = None) -> "TrackedPipeline":
    """Wrap PIPE (a loaded diffusers pipeline) so that each call is stored in LIBRARY.

    :param library: an open `Library`, a library file, or None for the default (PROMPTKIT_DB or ./library.db).
    :param model: what to record as the model (a folder, a .safetensors file or a hub id); default the
        pipeline's own `name_or_path`.
    """
    return TrackedPipeline(pipe, library, model=model)


class TrackedPipeline:
    """A held pipeline and the library its calls go to; any other attribute is the pipeline's own."""

    def __init__(self, pipe: Any, library: "Library | str | Path | None" = None, *, model: str | None = None) -> None:
        from .library import Library
        from .service.generation import resolve_model

        self.pipe = pipe
        self._own_library = not isinstance(library, Library)
        self.library = library if isinstance(library, Library) else Library(library)
        ref = model or getattr(pipe, "name_or_path", None) or pipe.config.get("_name_or_path")
        if not ref:
            raise BadParameter("track: the pipeline does not say where it was loaded from; pass model=PATH_OR_HUB_ID")
        self.model = resolve_model(str(ref))
        self.backend = _adopt(pipe, self.model)

    def __getattr__(self, name: str) -> Any:
        if name == "pipe":  # not set yet (a failing __init__): no recursion
            raise AttributeError(name)
        return getattr(self.pipe, name)

    def close(self) -> None:
        if self._own_library:
            self.library.close()

    def __enter__(self) -> "TrackedPipeline":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __call__(self, prompt: str | None = None, negative_prompt: str | None = None, *,
                 seeds: list[int] | str | None = None, **kwargs: Any) -> TrackedOutput:
        """Call the pipeline as diffusers would (``seeds=`` is promptkit's own: seed-locked noise) and store
        every image; returns a `TrackedOutput`."""
        if prompt is not None and not isinstance(prompt, str):
            raise BadParameter("track: give one prompt text per call (`prompt` is a list); call once per prompt")
        if not prompt:
            raise BadParameter("track: `prompt` is empty; a tracked call records a text prompt")
        if seeds is not None and kwargs.get("generator") is not None:
            raise BadParameter("track: give `seeds` or `generator`, not both")
        call = _Call(self, prompt, negative_prompt or "", seeds, kwargs)
        return call.run_tracked() if call.reason is None else call.run_untracked()


def _adopt(pipe: Any, model: str) -> Any:
    """The backend for PIPE's family (looked up in `promptkit.families`), built on PIPE itself."""
    from .families import BY_KEY, PIPELINE_FAMILY, UNET_FAMILIES, family_label
    from .plugins.manager import get_plugins

    name = type(pipe).__name__
    unet = {cls for key in UNET_FAMILIES for cls in BY_KEY[key].pipelines.values()}
    family = PIPELINE_FAMILY.get(name) or (("sdxl" if "XL" in name else "sd1") if name in unet else None)
    if family is None:
        raise ModelProblem(f"track: {name} is not a pipeline of a family promptkit knows "
                           f"({', '.join(f.label for f in BY_KEY.values())})")
    spec = get_plugins().backend_for_family(family)
    adopt = getattr(spec.resolve(), "from_pipe", None) if spec is not None else None
    if adopt is None:
        raise ModelProblem(f"track: no installed backend runs {family_label(family)} pipelines ({name}) yet; "
                           "see `promptkit plugins`")
    backend = adopt(pipe, model)
    folder_config = Path(model) / "scheduler" / "scheduler_config.json"
    if folder_config.is_file() and hasattr(backend, "base_scheduler_config"):
        # Samplers are built from the model's own scheduler config, as `promptkit generate` builds them.
        config = json.loads(folder_config.read_text(encoding="utf-8"))
        if family not in UNET_FAMILIES:  # with the class's defaults filled in, as a loaded pipeline's scheduler has
            import diffusers

            scheduler_class = getattr(diffusers, config.get("_class_name", ""), None)
            config = dict(scheduler_class.from_config(config).config) if scheduler_class else config
        backend.base_scheduler_config = config
    return backend


class _Call:
    """One call of a tracked pipeline: what it asks for, and whether promptkit can record it exactly."""

    def __init__(self, tracked: TrackedPipeline, prompt: str, negative: str, seeds: Any, kwargs: dict[str, Any]):
        from .families import BY_KEY, UNET_FAMILIES
        from .params import parse_seeds

        self.tracked, self.pipe, self.kwargs = tracked, tracked.pipe, dict(kwargs)
        self.prompt, self.negative = prompt, negative
        self.count = int(kwargs.get("num_images_per_prompt") or 1)
        signature = inspect.signature(type(self.pipe).__call__).parameters
        self.takes_negative = "negative_prompt" in signature
        self.defaults = {k: p.default for k, p in signature.items() if p.default is not inspect.Parameter.empty}
        family = getattr(tracked.backend, "family", None)
        # The flow-matching family's table entry (its guidance argument and options), None for SD and plugins.
        self.flow = BY_KEY[family] if family in BY_KEY and family not in UNET_FAMILIES else None
        self.init_image = True  # `image=` is an init image (not FLUX.2 klein's reference images, say)
        self.mode_reason = self._mode_mismatch()
        self.seeds: list[int] = []
        self.noise_device = "cpu"
        self.sampler = sampler_of(self.pipe.scheduler)
        self.reason = self._untracked_reason(parse_seeds(seeds) if isinstance(seeds, str) else seeds)

    def setting(self, name: str, fallback: Any = None) -> Any:
        value = self.kwargs.get(name)
        return value if value is not None else self.defaults.get(name, fallback)

    def _untracked_reason(self, seeds: list[int] | None) -> str | None:
        """Why this call cannot run as promptkit would run it (None when it can): the seeds first."""
        if seeds is not None:
            if len(seeds) != self.count and self.kwargs.get("num_images_per_prompt") is not None:
                raise BadParameter(f"track: {len(seeds)} seeds for num_images_per_prompt={self.count}")
            self.seeds, self.count = [int(s) for s in seeds], len(seeds)
        else:
            reason = self._generator_seeds()
            if reason:
                return reason
        unknown = sorted(set(self.kwargs) - self._recorded())
        if unknown:
            return f"the argument {unknown[0]!r} is not one promptkit records"
        if self.mode_reason:
            return self.mode_reason
        if self.flow is not None and self.flow.guidance_arg != "guidance_scale" \
                and self.kwargs.get("guidance_scale") is not None:
            return (f"guidance_scale on {self.flow.label} (promptkit records its guidance as "
                    f"{self.flow.guidance_arg} and runs it without guidance_scale)")
        if self.setting("output_type", "pil") != "pil":
            return f"output_type={self.kwargs['output_type']!r} (promptkit records PIL images)"
        if self.sampler is None:
            return f"the scheduler {type(self.pipe.scheduler).__name__} is not one of promptkit's samplers"
        if self._scheduler_differs():
            return "the scheduler's settings differ from the model's own (promptkit records the sampler by name)"
        return None

    def _generator_seeds(self) -> str | None:
        generator = self.kwargs.get("generator")
        if generator is None:
            return "no generator: the noise came from torch's global random state"
        generators = generator if isinstance(generator, list) else [generator]
        if len(generators) != self.count:
            return f"one generator for {self.count} images" if len(generators) == 1 else \
                f"{len(generators)} generators for {self.count} images"
        seeds = [known_seed(g) for g in generators]
        if any(seed is None for seed in seeds):
            return "a generator was already used or not seeded with manual_seed (use promptkit.seeded)"
        devices = {g.device.type for g in generators}
        if devices != {"cpu"} and (self.flow is not None
                                   or devices != {str(self.tracked.backend.device).split(":")[0]}):
            # the flow-matching engine draws every family's noise on CPU generators
            return f"generators on {', '.join(sorted(devices))}"
        self.seeds = [int(seed) for seed in seeds]
        self.noise_device = "cpu" if devices == {"cpu"} else "gpu"
        return None

    def _mode_mismatch(self) -> str | None:
        """For a flow-matching pipeline: why its `image=`/`mask_image=` are not what promptkit's img2img or
        inpainting records (FLUX.2 klein's reference images, FLUX.1 Fill's pipeline), else None."""
        if self.flow is None:
            return None
        asked = "inpaint" if self.kwargs.get("mask_image") is not None else \
            "img2img" if self.kwargs.get("image") is not None else "txt2img"
        held = type(self.pipe).__name__
        if self.flow.pipelines.get(asked) == held:
            return None
        self.init_image = False
        if asked == "txt2img":
            return f"{held} is not a pipeline promptkit runs for {self.flow.label}"
        return f"`image=` on {held} is not an init image promptkit records ({asked} runs on " \
               f"{self.flow.pipelines.get(asked, 'no ' + self.flow.label + ' pipeline')})"

    def _recorded(self) -> set[str]:
        """The call arguments promptkit records for this pipeline's family."""
        if self.flow is None:
            return RECORDED
        from .families import FAMILY_OPTIONS

        own = {self.flow.guidance_arg} | {key for key in FLOW_EXTRA if self.flow.key in FAMILY_OPTIONS[key][1]}
        return RECORDED | own

    def family_extra(self) -> dict[str, Any]:
        """FLUX.1's `true_cfg_scale` and any family's `max_sequence_length`, when the call gives them: recorded in
        `params.extra` as `promptkit generate --true-cfg/--max-sequence-length` records them."""
        if self.flow is None:
            return {}
        extra = {key: self.kwargs[key] for key in FLOW_EXTRA
                 if key != self.flow.guidance_arg and self.kwargs.get(key) is not None}
        if "true_cfg_scale" in extra:
            extra["true_cfg_scale"] = float(extra["true_cfg_scale"])
        if "max_sequence_length" in extra:
            extra["max_sequence_length"] = int(extra["max_sequence_length"])
        return extra

    def _scheduler_differs(self) -> bool:
        import diffusers

        from .params import SAMPLERS

        backend = self.tracked.backend
        if self.flow is not None:
            from .engine.flow import FLOW_SAMPLERS

            class_name, extra = FLOW_SAMPLERS[self.sampler], {}
        else:
            class_name, extra = SAMPLERS[self.sampler]
        expected = getattr(diffusers, class_name).from_config(backend.base_scheduler_config, **extra).config
        strip = lambda config: {k: v for k, v in dict(config).items() if not k.startswith("_")}  # noqa: E731
        return strip(expected) != strip(self.pipe.scheduler.config)

    def params(self, sampler: str | None = None):
        from .params import GenerationParams

        flow = self.flow
        guidance = ("guidance_scale", 7.5) if flow is None else (flow.guidance_arg, flow.default_guidance)
        return GenerationParams(sampler=sampler or self.sampler, steps=int(self.setting("num_inference_steps", 50)),
                                cfg=float(self.setting(*guidance)), width=self.kwargs.get("width"),
                                height=self.kwargs.get("height"), noise_device=self.noise_device)

    def store_inputs(self) -> dict[str, Any]:
        """The init image and mask, stored content-addressed as `generate --init-image/--mask` stores them."""
        from .inputs import PENDING, PreparedInputs, check_mask_size
        from .params import check_extra

        image, mask = self.kwargs.get("image"), self.kwargs.get("mask_image")
        if image is None:
            if mask is not None or self.kwargs.get("strength") is not None:
                raise BadParameter("track: `mask_image` and `strength` need an init `image`")
            return {}
        if not hasattr(image, "convert") or (mask is not None and not hasattr(mask, "convert")):
            raise BadParameter("track: `image` and `mask_image` must be PIL images")
        extra: dict[str, Any] = {"init_image": PENDING}
        images = {"init_image": image.convert("RGB")}
        if mask is not None:
            images["mask"] = mask.convert("L")
            check_mask_size(images["init_image"], images["mask"], "mask_image")
            extra.update(mask=PENDING, mask_blur=0)
        extra["strength"] = float(self.setting("strength", 1.0 if mask is not None else 0.75))
        check_extra(extra)
        return PreparedInputs(extra=extra, images=images).store(self.tracked.library)

    def prompt_row(self) -> dict[str, Any]:
        """The saved prompt with exactly this text (from any template), else a new one with template `tracked`."""
        from .service.importing import IMPORTED_TEMPLATE
        from .templates import Fields, PromptBuilder

        library = self.tracked.library
        for template in [*PromptBuilder().template_names(), IMPORTED_TEMPLATE, TRACKED_TEMPLATE]:
            rows = library.prompts_with_text(self.prompt, self.negative, template)
            if rows:
                return library.get_prompt(rows[0]["id"])
        fields = Fields(subject=self.prompt, negative=[self.negative] if self.negative else [], negative_preset="")
        row = {"name": None, "template": TRACKED_TEMPLATE, "template_digest": "",
               "fields": json.dumps(fields.to_dict(), sort_keys=True, ensure_ascii=False), "positive": self.prompt,
               "negative": self.negative, "tags": [TRACKED_TEMPLATE], "notes": "recorded by promptkit.track"}
        [(prompt_id, _skipped)] = library.add_prompts_once([row], lambda _row, _index: True)
        return library.get_prompt(prompt_id)

    def run_tracked(self) -> TrackedOutput:
        """The call as `promptkit generate` runs it: the same job, on the held pipeline, one batch."""
        from .generation import GenerationJob, run_job

        library, backend = self.tracked.library, self.tracked.backend
        params = self.params()
        params.extra = {**self.store_inputs(), **self.family_extra()}
        job = GenerationJob(prompt=self.prompt_row(), params=params, seeds=self.seeds, batch_size=len(self.seeds))
        scheduler = self.pipe.scheduler
        try:
            outcome = run_job(library, backend, job)
        finally:
            self.pipe.scheduler = scheduler  # the engine sets its sampler on the pipeline; give the user's back
        self._use_generators()
        images = [_read(library, gen) for gen in outcome.generations]
        return TrackedOutput(images=images, generations=outcome.generations, reproducible=True, notes=outcome.notes)

    def _use_generators(self) -> None:
        """The engine drew the noise from its own generators for the same seeds; move the caller's on, as
        the pipeline would have, so that a second call with them makes other images (and is recorded as untracked)."""
        import torch

        generator = self.kwargs.get("generator")
        for g in generator if isinstance(generator, list) else [generator] if generator is not None else []:
            torch.randn(1, generator=g, device=g.device)

    def run_untracked(self) -> TrackedOutput:
        """The call exactly as made; each image stored with reproducible=0 and the reason as a flag."""
        from .generation import GenerationJob, JobOutcome, generation_record, start_writer
        from .records import Sampling

        library, backend = self.tracked.library, self.tracked.backend
        if self.seeds and self.kwargs.get("generator") is None:  # seeds= given: seed the noise even so
            self.kwargs.update(generator=seeded(self.seeds), num_images_per_prompt=len(self.seeds))
        notes = [UNTRACKED_FLAG.format(reason=self.reason)]
        if self.takes_negative:
            self.kwargs["negative_prompt"] = self.negative or None
        elif self.negative:  # FLUX.2 klein's pipeline has no negative prompt: never passed to it
            notes.append(f"{type(self.pipe).__name__} takes no negative prompt; it was not passed")
        started = time.perf_counter()
        output = self.pipe(prompt=self.prompt, **self.kwargs)
        seconds = time.perf_counter() - started
        images = list(output.images if hasattr(output, "images") else output[0])
        seeds = self._recorded_seeds(len(images))
        params = self.params(sampler="Euler")  # a placeholder: the scheduler's own name is recorded below
        extra = self.store_inputs() if self.init_image else {}
        params.extra = {**extra, **self.family_extra(), "flags": [UNTRACKED_FLAG.format(reason=self.reason)]}
        job = GenerationJob(prompt=self.prompt_row(), params=params, seeds=seeds, batch_size=len(seeds))
        info, writer, outcome = backend.describe(), start_writer(library, len(images)), JobOutcome()
        for index, (seed, image) in enumerate(zip(seeds, images)):
            mode = "inpaint" if extra.get("mask") else "img2img" if extra else "txt2img"
            record = generation_record(job, info, seed, seeds, index, image.size, {"mode": mode})
            record.sampling = Sampling(self.sampler or type(self.pipe.scheduler).__name__, params.steps, params.cfg,
                                       image.width, image.height, params.noise_device)
            record.source, record.reproducible = UNTRACKED_SOURCE, False
            writer.put((job, image, record, seconds / len(images)))
        writer.finish()
        writer.collect(outcome)
        return TrackedOutput(images=images, generations=outcome.generations, reproducible=False, notes=notes,
                             nsfw_content_detected=getattr(output, "nsfw_content_detected", None))

    def _recorded_seeds(self, count: int) -> list[int]:
        """What the row can say about the seeds: known ones, else each generator's initial seed, else 0."""
        if self.seeds:
            return list(self.seeds)[:count] + [0] * max(0, count - len(self.seeds))
        generator = self.kwargs.get("generator")
        generators = generator if isinstance(generator, list) else [generator] * count if generator else []
        seeds = [int(g.initial_seed()) % (2**32) for g in generators[:count]]
        return seeds + [0] * (count - len(seeds))


def _read(library: "Library", generation: dict[str, Any]) -> Any:
    from PIL import Image

    with Image.open(library.image_path(library.get_generation(generation["id"]))) as image:
        return image.copy()
