"""The library's HTML pages: home (recent prompts), search, and a prompt with its images."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..library import Library
from .connections import open_library
from .templating import render

PAGE_SIZE = 48
SEARCH_LIMIT = 60
router = APIRouter(include_in_schema=False)


def _cards(library: Library, prompts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each prompt with its summary (image count, mean stars, cover images) for a card."""
    summaries = library.summarize_prompts([p["id"] for p in prompts])
    return [{"prompt": p, "summary": summaries[p["id"]]} for p in prompts]


@router.get("/", response_class=HTMLResponse)
def library_home(
    request: Request,
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
    starred: bool = False,
) -> HTMLResponse:
    with open_library(request) as library:
        prompts = library.list_prompts(PAGE_SIZE, (page - 1) * PAGE_SIZE, starred_only=starred)
        total = library.count_prompts(starred_only=starred)
        cards = _cards(library, prompts)
    return render(request, "home.html", title="Starred" if starred else "Library", cards=cards, total=total,
                  page=page, pages=max(1, -(-total // PAGE_SIZE)), starred=starred,
                  current_nav="/?starred=true" if starred else "/")


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, q: Annotated[str, Query(max_length=500)] = "") -> HTMLResponse:
    cards: list[dict[str, Any]] = []
    with open_library(request) as library:
        if q.strip():
            cards = _cards(library, library.search(q, SEARCH_LIMIT))
    return render(request, "search.html", title=f"Search: {q}" if q.strip() else "Search", q=q, cards=cards,
                  limit=SEARCH_LIMIT)


@router.get("/prompts/{ref}", response_class=HTMLResponse)
def prompt_page(request: Request, ref: Annotated[str, Path(max_length=500)]) -> HTMLResponse:
    """A prompt by id or name."""
    with open_library(request) as library:
        prompt = library.show_prompt(ref)
        lineage = library.prompt_lineage(prompt["id"])
    return render(request, "prompt.html", title=prompt.get("name") or f"Prompt #{prompt['id']}", prompt=prompt,
                  lineage=lineage)
