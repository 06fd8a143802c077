"""Console pages (`/`, `/review`, `/annotations`, `/trends`, `/models`) and `/static`.

Pages are thin shells: the data comes from the JSON API, fetched by the page's module
(static/js/<page>.js) through static/js/api.js, so the console shows exactly what the API
says. The model card page is rendered here (markdown -> HTML, raw HTML disabled).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt

from service.api.routes.models import card_of
from service.settings import Settings
from training.registry import Registry

HERE = Path(__file__).resolve().parent
STATIC_URL = "/static"
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")

# Pages load only their own files: no inline script runs, nothing from another origin,
# no framing (clickjacking). Inline style attributes draw the score bars.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

# (path, template, navigation title)
PAGES = [
    ("/", "read.html", "Read"),
    ("/review", "review.html", "Review"),
    ("/annotations", "annotations.html", "Annotations"),
    ("/trends", "trends.html", "Trends"),
    ("/models", "models.html", "Models"),
]


def _context(request: Request, active: str, **extra: Any) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    return {
        "nav": [(path, title) for path, _, title in PAGES],
        "active": active,
        "console": settings.console.model_dump(),
        "labels": list(settings.labels),
        **extra,
    }


def _page(template: str, path: str) -> Any:
    async def page(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, template, _context(request, path), headers=SECURITY_HEADERS)

    page.__name__ = f"page_{template.split('.')[0]}"
    return page


for _path, _template, _title in PAGES:
    router.add_api_route(_path, _page(_template, _path), methods=["GET"], response_class=HTMLResponse)


@router.get("/models/{version}/card", response_class=HTMLResponse)
async def card_page(request: Request, version: str) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    registry = Registry(settings.paths.models_dir)
    if version not in registry.versions():
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown model version {version!r}")
    card = card_of(registry.path(version))
    body = _markdown.render(card["card"]) if card["card"] else None
    return templates.TemplateResponse(
        request,
        "card.html",
        _context(request, "/models", version=version, card_html=body, plots=card["plots"]),
        headers=SECURITY_HEADERS,
    )


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the console pages at `/` and their files at `/static` (`/docs` is untouched)."""
    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=HERE / "static"), name="static")
