"""The review page's Jinja2 environment (autoescaped, strict) and the helpers templates use."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..cards import how_made_text
from .assets import static_url


@dataclass(frozen=True)
class NavLink:
    label: str
    href: str


def stars_text(stars: int | float | None) -> str:
    """★★★★☆ for 4; empty for unrated."""
    if stars is None:
        return ""
    filled = int(round(stars))
    return "★" * filled + "☆" * (5 - filled)


def prompt_title(prompt: dict[str, Any]) -> str:
    return prompt.get("name") or f"Prompt #{prompt['id']}"


def when(timestamp: str | None) -> str:
    """A stored UTC timestamp as 'just now', '5 min ago', '3 h ago', '2 days ago' or a date."""
    if not timestamp:
        return ""
    try:
        then = datetime.datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    if then.tzinfo is None:
        then = then.replace(tzinfo=datetime.timezone.utc)
    seconds = (datetime.datetime.now(datetime.timezone.utc) - then).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 7 * 86400:
        days = int(seconds // 86400)
        return f"{days} day{'s' if days > 1 else ''} ago"
    return then.strftime("%Y-%m-%d")


def image_url(generation: dict[str, Any], thumbnail: bool = False) -> str:
    """A generation's image by id; `v` (its sha256) lets the browser cache it for good."""
    suffix = "/thumb" if thumbnail else ""
    return f"/images/{generation['id']}{suffix}?v={generation['image_sha256'][:16]}"


environment = Environment(
    loader=PackageLoader("promptkit.web", "templates"),
    autoescape=True,  # every page shows user text (prompts, names, tags, notes)
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(stars=stars_text, title=prompt_title, when=when)
environment.globals.update(static=static_url, image_url=image_url, how_made=how_made_text)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render TEMPLATE inside the page frame (navigation tabs, search box)."""
    context.setdefault("q", "")
    context.setdefault("title", "")
    context.setdefault("current_nav", "")  # the navigation link to mark as the current page
    html = environment.get_template(template).render(nav_links=request.app.state.nav_links, **context)
    return HTMLResponse(html, status_code=status_code)
