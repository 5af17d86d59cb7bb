"""The JSON API under /api/: prompts, search, generations, ratings and stars.

Each route opens the library, calls one or two `Library` methods and shapes the answer;
the rules (star bounds, what "the rating" of an image is) live in `promptkit.library`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from ..errors import PromptkitError
from ..library import MAX_ROW_ID
from .connections import open_library
from .templating import image_url

# -- shapes ------------------------------------------------------------------


class Problem(BaseModel):
    """Every refusal: one line saying what was wrong."""

    detail: str


PROBLEMS = {
    400: {"model": Problem, "description": "Host header not served here, or a bad value."},
    403: {"model": Problem, "description": "A change that did not come from this page (cross-site)."},
    413: {"model": Problem, "description": "Request body over 64 KiB."},
    422: {"model": Problem, "description": "Invalid parameters or body."},
    503: {"model": Problem, "description": "The library is busy or unavailable; try again."},
}
NOT_FOUND = {404: {"model": Problem, "description": "No such prompt or generation."}}
router = APIRouter(prefix="/api", tags=["library"], responses=PROBLEMS)

PromptId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A prompt's id.")]
GenerationId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A generation's id.")]


class Prompt(BaseModel):
    id: int
    name: str | None
    template: str | None
    template_digest: str | None
    fields: dict[str, Any] = Field(description="The structured fields the prompt was rendered from.")
    positive: str
    negative: str
    parent_id: int | None = Field(description="The prompt this one was iterated from.")
    tags: list[str]
    notes: str | None
    starred: bool
    created_at: str
    url: str = Field(description="The prompt's page.")


class PromptList(BaseModel):
    prompts: list[Prompt]
    total: int = Field(description="How many prompts match, across all pages.")


class Rating(BaseModel):
    id: int
    generation_id: int
    stars: int
    note: str | None
    created_at: str


class Generation(BaseModel):
    id: int
    prompt_id: int
    experiment_id: int | None
    variant: str | None
    model: str | None
    model_hash: str | None
    sampler: str | None
    steps: int | None
    cfg: float | None
    width: int | None
    height: int | None
    seed: int
    noise_device: str | None
    batch: dict[str, Any] | None
    params: dict[str, Any] | None
    image_sha256: str
    device: str | None
    dtype: str | None
    versions: dict[str, Any] | None
    seconds: float | None
    created_at: str
    image_url: str
    thumbnail_url: str
    stars: int | None = Field(description="The image's rating: its latest one (rating again replaces it).")
    ratings: list[Rating] = Field(description="Every rating given, oldest first.")


class GenerationDetail(Generation):
    parameters: str | None = Field(description="The AUTOMATIC1111 `parameters` text from the PNG.")


class Lineage(BaseModel):
    ancestors: list[Prompt] = Field(description="The prompts this one was iterated from, oldest first.")
    children: list[Prompt] = Field(description="Prompts iterated from this one.")


class PromptDetail(Prompt):
    generations: list[Generation]
    lineage: Lineage


class RatingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stars: int = Field(ge=1, le=5, strict=True, description="1 to 5.")
    note: str = Field("", max_length=2000)


class StarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starred: bool = Field(strict=True)


# -- rows to shapes ------------------------------------------------------------


def prompt_out(row: dict[str, Any]) -> Prompt:
    fields, tags = row.get("fields"), row.get("tags")
    return Prompt(**{
        **{key: row.get(key) for key in Prompt.model_fields if key in row},
        "fields": fields if isinstance(fields, dict) else {},
        "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
        "starred": bool(row.get("starred")),
        "url": f"/prompts/{row['id']}",
    })


def _json_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def generation_out(row: dict[str, Any], ratings: list[dict[str, Any]], stars: int | None,
                   model: type[Generation] = Generation, **extra: Any) -> Generation:
    """ROW as the API shows it; STARS is its current rating (`Library.current_ratings`), RATINGS the history."""
    plain = {key: row.get(key) for key in model.model_fields if key in row}
    return model(**{
        **plain,
        "batch": _json_dict(row.get("batch")),
        "params": _json_dict(row.get("params")),
        "versions": _json_dict(row.get("versions")),
        "image_url": image_url(row),
        "thumbnail_url": image_url(row, thumbnail=True),
        "stars": stars,
        "ratings": [Rating(**r) for r in ratings],
        **extra,
    })


# -- routes ------------------------------------------------------------------


@router.get("/prompts", response_model=PromptList)
def list_prompts(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    starred: bool = False,
) -> PromptList:
    """Saved prompts, newest first."""
    with open_library(request) as library:
        rows = library.list_prompts(limit, offset, starred_only=starred)
        return PromptList(prompts=[prompt_out(r) for r in rows], total=library.count_prompts(starred_only=starred))


@router.get("/search", response_model=PromptList, responses={400: {"description": "An empty query."}})
def search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Words to find (full-text search).")],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> PromptList:
    """Full-text search over prompt names, text, tags and notes, best match first."""
    with open_library(request) as library:
        rows = library.search(q, limit)
    return PromptList(prompts=[prompt_out(r) for r in rows], total=len(rows))


@router.get("/prompts/{prompt_id:int}", response_model=PromptDetail, responses=NOT_FOUND)
def prompt_detail(request: Request, prompt_id: PromptId) -> PromptDetail:
    """A prompt with its generations (each with its ratings) and its lineage."""
    with open_library(request) as library:
        row = library.show_prompt(prompt_id)
        lineage = library.prompt_lineage(row["id"])
    return PromptDetail(
        **prompt_out(row).model_dump(),
        generations=[generation_out(g, g["ratings"], g["stars"]) for g in row["generations"]],
        lineage=Lineage(ancestors=[prompt_out(p) for p in lineage["ancestors"]],
                        children=[prompt_out(p) for p in lineage["children"]]),
    )


@router.post("/prompts/{prompt_id:int}/star", response_model=Prompt, responses=NOT_FOUND)
def star_prompt(request: Request, prompt_id: PromptId, body: StarRequest) -> Prompt:
    """Star or unstar a prompt."""
    with open_library(request) as library:
        return prompt_out(library.set_starred(prompt_id, body.starred))


@router.get("/generations/{generation_id:int}", response_model=GenerationDetail, responses=NOT_FOUND)
def generation_detail(request: Request, generation_id: GenerationId) -> GenerationDetail:
    """One generated image: its parameters, ratings, and the A1111 text stored in its PNG."""
    with open_library(request) as library:
        row = library.get_generation(generation_id)
        ratings = library.generation_ratings(generation_id)
        stars = library.current_rating(generation_id)
        try:
            parameters = library.image_parameters(generation_id)
        except PromptkitError:
            parameters = None  # the row is still worth showing when its file is gone
    return generation_out(row, ratings, stars, GenerationDetail, parameters=parameters)


@router.post("/generations/{generation_id:int}/ratings", response_model=Rating, status_code=201,
             responses=NOT_FOUND)
def rate_generation(request: Request, generation_id: GenerationId, body: RatingRequest) -> Rating:
    """Rate an image 1 to 5 stars; the latest rating is the image's rating."""
    with open_library(request) as library:
        return Rating(**library.get_rating(library.rate(generation_id, body.stars, body.note)))
