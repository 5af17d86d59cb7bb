"""The studio's prompt matrix: `POST /api/studio/matrix` makes a matrix experiment from a saved prompt
and terms (as `promptkit ab matrix`), generates its cells on the warm engine, and points to its review."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from .. import studio
from ..library import MAX_ROW_ID
from ..params import resolve_model
from .api import NOT_FOUND, PROBLEMS
from .connections import open_library
from .studio import Settings

router = APIRouter(prefix="/api/studio", tags=["studio"], responses=PROBLEMS)


class MatrixRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt_id: int = Field(ge=1, le=MAX_ROW_ID)
    terms: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=15)
    pairs_only: bool = False
    model: Annotated[str, Field(min_length=1, max_length=1000)]
    seeds: list[int] = Field(min_length=1, max_length=studio.MAX_SEEDS)
    settings: Settings = Field(default_factory=Settings)


@router.post("/matrix", status_code=201, responses=NOT_FOUND)
def make_matrix(request: Request, body: MatrixRequest) -> dict[str, Any]:
    """A prompt matrix on the prompt's terms (see `promptkit.new_matrix_experiment`), its cells generated on
    the warm engine before this answers; the answer names its design, terms, results and review pages."""
    from ..service.matrix import new_matrix_experiment

    model = resolve_model(body.model.strip(), allow_pickle=False)
    with open_library(request) as library:
        name = studio.free_experiment_name(library, f"studio-matrix-{body.prompt_id}")
        data = new_matrix_experiment(library, name, body.prompt_id, list(body.terms), list(body.seeds),
                                     pairs_only=body.pairs_only, params=body.settings.to_params(), model=model,
                                     templates_dir=request.app.state.builder.user_dir)
        db_path = str(library.path.resolve())
    cells = len(data["variants"]) * len(data["seeds"])
    request.app.state.studio.run_experiment_cells(db_path, model, name)
    url = f"/experiments/{quote(name, safe='')}"
    return {"name": name, "generated": cells, "design": data["design"], "terms": data["terms"],
            "results_url": url, "review_url": f"{url}/review"}
