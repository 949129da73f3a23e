"""Errors met while serving a dashboard page, shown as a dashboard page (hub/app.py calls this).

The public form pages have their own error page (templates/ui/error.html.j2, written for people
who sent a form); a signed-in rep or manager gets the dashboard's, with the navigation and the
field to blame. app.js reads the first paragraph of ``main`` to show an htmx error beside its form.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from hub.ui.templating import render

_TITLES = {
    400: "That request was not understood",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    409: "That clashes with a change already made",
    413: "That file is too large",
    422: "Please check what you entered",
    429: "Too many attempts",
    503: "The hub is busy or its database is down",
}


def error_page(
    request: Request, status_code: int, message: str, *, field: str | None = None, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """The dashboard's error page: what was wrong, which field, and a way back."""
    title = _TITLES.get(status_code, "Something went wrong")
    page = render(request, "ui/app/error.html.j2", status_code=status_code, title=title, message=message, field=field)
    page.headers.update(headers or {})
    return page


def is_dashboard(request: Request) -> bool:
    """True while a dashboard route is serving (set by hub/ui/router.py)."""
    return bool(getattr(request.state, "dashboard", False))
