"""The prompt studio: a form for the fields, the rendered prompt and its lint as you type, and
Generate on the warm engine with the seeds held, iterating into child prompts and A/B tests.

Routes only parse and shape; the logic is in `promptkit.studio`.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import HTMLResponse

from .. import studio
from ..cards import how_made_text
from ..experiments import VariantSpec, adopt_generations, create_experiment, get_experiment, missing_cells
from ..errors import BadParameter, PromptkitError
from ..families import TABLE
from ..family_rules import check_generation_options, default_template, family_for
from ..library import MAX_ROW_ID
from ..params import DEFAULT_SAMPLER, SAMPLERS, GenerationParams, resolve_model
from ..templates import DEFAULT_NEGATIVE_PRESET, DEFAULT_TEMPLATE, Fields, PromptBuilder
from .api import NOT_FOUND, PROBLEMS
from .connections import open_library
from .templating import image_url, render

page_router = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/api/studio", tags=["studio"], responses=PROBLEMS)

Text = Annotated[str, Field(max_length=4000)]
Name = Annotated[str, Field(max_length=100)]


class StudioFields(BaseModel):
    """What the form holds: the standard fields, preset names and the template's extra fields."""

    model_config = ConfigDict(extra="forbid")
    subject: Text = ""
    action: Text = ""
    environment: Text = ""
    style: list[Name] = Field(default_factory=list, max_length=30)
    quality: list[Name] = Field(default_factory=list, max_length=30)
    negative: list[Text] = Field(default_factory=list, max_length=50)
    negative_preset: Name = DEFAULT_NEGATIVE_PRESET
    extras: dict[Name, Text] = Field(default_factory=dict, max_length=50)
    # field -> A1111 weight, as `build --weight`; 1 means no weight
    weights: dict[Name, Annotated[float, Field(gt=0, le=2)]] = Field(default_factory=dict, max_length=50)

    def to_fields(self) -> Fields:
        # An empty extra is left out, so the template's own error names the field still missing.
        extras = {k: v for k, v in self.extras.items() if v.strip()}
        weights = {k: w for k, w in self.weights.items() if w != 1}
        return Fields(subject=self.subject, action=self.action, environment=self.environment, style=self.style,
                      quality=self.quality, negative=self.negative, negative_preset=self.negative_preset,
                      extras=extras, weights=weights)


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template: Name | None = DEFAULT_TEMPLATE  # None: the family's default template
    fields: StudioFields
    model: Annotated[str, Field(max_length=1000)] | None = None
    family: Name | None = Field(None, description="The family key when the model does not say it.")
    cfg: float | None = Field(None, ge=0, le=100, description="Guidance, for whether the negative prompt is read.")
    true_cfg: float | None = Field(None, gt=0, le=100, description="true_cfg_scale (FLUX.1, Qwen-Image).")


class Settings(BaseModel):
    """Generation parameters the page shows (the seeds are held between tries)."""

    model_config = ConfigDict(extra="forbid")
    sampler: Name = DEFAULT_SAMPLER
    steps: int = Field(25, ge=1, le=1000)
    cfg: float = Field(7.0, ge=0, le=100)
    width: int | None = Field(None, ge=8, le=8192)
    height: int | None = Field(None, ge=8, le=8192)
    true_cfg: float | None = Field(None, gt=0, le=100)  # FLUX.1: true CFG, reads the negative prompt above 1

    def to_params(self) -> GenerationParams:
        extra = {"true_cfg_scale": self.true_cfg} if self.true_cfg is not None else {}
        return GenerationParams(sampler=self.sampler, steps=self.steps, cfg=self.cfg, width=self.width,
                                height=self.height, extra=extra)


class GenerateRequest(PreviewRequest):
    model: Annotated[str, Field(min_length=1, max_length=1000)]
    parent_id: int | None = Field(None, ge=1, le=MAX_ROW_ID,
                                  description="The prompt on the page now; a changed prompt is saved as its child.")
    seeds: list[int] = Field(min_length=1, max_length=studio.MAX_SEEDS)
    settings: Settings = Field(default_factory=Settings)


class ExperimentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parent_id: int = Field(ge=1, le=MAX_ROW_ID)
    child_id: int = Field(ge=1, le=MAX_ROW_ID)
    model: Annotated[str, Field(min_length=1, max_length=1000)]
    seeds: list[int] = Field(min_length=1, max_length=studio.MAX_SEEDS)
    settings: Settings = Field(default_factory=Settings)


def _builder(request: Request) -> PromptBuilder:
    return request.app.state.builder


def _image(generation: dict[str, Any] | None) -> dict[str, Any] | None:
    if generation is None:
        return None
    return {**generation, "url": image_url(generation), "thumb": image_url(generation, thumbnail=True),
            "made": how_made_text(generation)}


# -- the page ---------------------------------------------------------------------------


def _template_choices(builder: PromptBuilder) -> list[dict[str, Any]]:
    choices = []
    for name in builder.template_names():
        try:
            choices.append({"name": name, "fields": builder.declared_fields(name), "error": None})
        except PromptkitError as exc:
            choices.append({"name": name, "fields": [], "error": studio.one_line(exc)})
    return choices


def _start(request: Request, prompt_id: int | None) -> dict[str, Any]:
    """The form's starting values: a saved prompt's fields, seeds and settings, or empty ones."""
    start: dict[str, Any] = {"prompt": None, "fields": Fields().to_dict(), "template": DEFAULT_TEMPLATE,
                             "seeds": list(studio.DEFAULT_SEEDS), "params": GenerationParams().to_dict(),
                             "model": request.app.state.default_model or ""}
    if prompt_id is None:
        return start
    from ..lineage import parent_settings

    with open_library(request) as library:
        prompt = library.get_prompt(prompt_id)
        start.update(prompt=prompt, template=prompt["template"] or DEFAULT_TEMPLATE,
                     fields={**start["fields"], **(prompt["fields"] or {})})
        try:
            params, seeds, model, _batch = parent_settings(library, prompt["id"])
        except PromptkitError:
            return start  # never generated: the defaults
        start.update(seeds=seeds[: studio.MAX_SEEDS], params=params.to_dict(), model=start["model"] or model)
    return start


def _studio_page(request: Request, prompt_id: int | None) -> HTMLResponse:
    builder = _builder(request)
    start = _start(request, prompt_id)
    presets = {kind: builder.presets(kind) for kind in ("style", "quality", "negative")}
    with open_library(request) as library:
        in_library = studio.style_images(library, [p.name for p in presets["style"]])
    for images in in_library.values():
        for image in images:
            image["thumb"] = image_url(image, thumbnail=True)
    return render(request, "studio.html", title="Studio", current_nav="/studio", start=start, presets=presets,
                  templates=_template_choices(builder), samplers=list(SAMPLERS), in_library=in_library,
                  families=[{"key": f.key, "label": f.label} for f in TABLE])


@page_router.get("/studio", response_class=HTMLResponse)
def studio_page(request: Request) -> HTMLResponse:
    return _studio_page(request, None)


@page_router.get("/studio/{prompt_id:int}", response_class=HTMLResponse)
def studio_from_prompt(request: Request, prompt_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)]) -> HTMLResponse:
    """The studio filled in from a saved prompt; what is generated from here is its child."""
    return _studio_page(request, prompt_id)


# -- JSON -------------------------------------------------------------------------------


@router.post("/preview")
def preview(request: Request, body: PreviewRequest) -> dict[str, Any]:
    """The rendered positive and negative prompt with token counts and lint; a template error is
    `error` (one line), not a failed request."""
    model = body.model or request.app.state.default_model
    result = studio.preview(_builder(request), body.fields.to_fields(), body.template, model=model,
                            family=body.family or None, guidance=body.cfg, true_cfg=body.true_cfg)
    try:
        result["template_fields"] = _builder(request).declared_fields(result.get("template") or body.template)
    except PromptkitError:
        result["template_fields"] = []
    return result


@router.get("/templates/{name}")
def template_fields(request: Request, name: Annotated[str, Path(max_length=100)]) -> dict[str, Any]:
    """The extra `key=value` fields template NAME declares."""
    builder = _builder(request)
    builder.template_source(name)  # unknown: 400 with the list of templates
    return {"name": name, "fields": builder.declared_fields(name)}


@router.post("/generate", status_code=202)
def generate(request: Request, body: GenerateRequest) -> dict[str, Any]:
    """Save the prompt (as the child of `parent_id` when it changed) and queue it on the warm engine."""
    # 1. Check inputs before writing anything
    model = resolve_model(body.model.strip(), allow_pickle=False)
    seeds = studio.parse_seed_list(body.seeds)
    params = body.settings.to_params()
    check_generation_options(model, params, true_cfg_scale=body.settings.true_cfg)
    # 2. Save the prompt, then queue the job
    with open_library(request) as library:
        template = body.template or default_template(family_for(model, body.family or None))
        prompt, created = studio.save_for_generation(library, _builder(request), body.fields.to_fields(), template,
                                                     body.parent_id)
        parent_id = prompt["parent_id"]  # compared side by side with its parent, when it has one
        job = request.app.state.studio.submit_generation(library, model, prompt, parent_id, params.to_dict(), seeds)
    return {"job_id": job.id, "prompt_id": prompt["id"], "created": created, "parent_id": parent_id,
            "status_url": f"/api/studio/jobs/{job.id}", "prompt_url": f"/prompts/{prompt['id']}"}


@router.get("/jobs/{job_id:int}", responses=NOT_FOUND)
def job_status(request: Request, job_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)]) -> dict[str, Any]:
    """A generation job: its state, the images saved so far, and when it is done and the prompt has a
    parent, the side-by-side comparison per seed."""
    engine: studio.StudioEngine = request.app.state.studio
    job = engine.job(job_id)
    with open_library(request) as library:
        images = [_image(g) for g in engine.job_images(library, job)]
        comparison = None
        if job.state == "done" and job.parent_id is not None:
            comparison = studio.compare(library, job.parent_id, job.prompt_id, job.seeds)
            for pair in comparison["pairs"]:
                pair["parent"], pair["child"] = _image(pair["parent"]), _image(pair["child"])
    seconds = (job.finished or time.monotonic()) - job.started
    return {"job_id": job.id, "state": job.state, "done": len(images), "total": len(job.seeds), "error": job.error,
            "notes": job.notes, "prompt_id": job.prompt_id, "parent_id": job.parent_id, "seeds": job.seeds,
            "images": images, "comparison": comparison, "seconds": round(seconds, 2)}


@router.post("/experiments", status_code=201, responses=NOT_FOUND)
def make_experiment(request: Request, body: ExperimentRequest) -> dict[str, Any]:
    """Parent (A) versus child (B) as an A/B experiment on the same seeds and parameters.

    The images already made for them are recorded as the experiment's cells (new rows on the same
    files); any cell still missing is generated on the warm engine before this answers.
    """
    if body.parent_id == body.child_id:
        raise BadParameter("an A/B test needs two different prompts; change a field and generate first")
    model = resolve_model(body.model.strip(), allow_pickle=False)
    seeds = studio.parse_seed_list(body.seeds)
    params = body.settings.to_params()
    with open_library(request) as library:
        name = studio.free_experiment_name(library, f"studio-{body.parent_id}-vs-{body.child_id}")
        create_experiment(library, name, [VariantSpec("A", str(body.parent_id)), VariantSpec("B", str(body.child_id))],
                          seeds, params, model=model)
        for label, prompt_id in (("A", body.parent_id), ("B", body.child_id)):
            existing = studio.latest_by_seed(library, prompt_id, seeds)
            adopt_generations(library, name, label, [g["id"] for g in existing.values()])
        missing = sum(len(s) for s in missing_cells(library, get_experiment(library, name)).values())
        db_path = str(library.path.resolve())
    if missing:
        request.app.state.studio.run_experiment_cells(db_path, model, name)
    return {"name": name, "generated": missing, "review_url": f"/experiments/{quote(name, safe='')}/review"}
