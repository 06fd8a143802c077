"""The analyst console: server-rendered pages (Jinja2) with one small ES module each.

Why this stack: the pages are forms and lists over the JSON API; templates plus plain
modules need no build step, no CDN and no runtime beyond the FastAPI app itself, so the
console works offline and ships as files in the repository.
"""

from service.web.pages import install

__all__ = ["install"]
