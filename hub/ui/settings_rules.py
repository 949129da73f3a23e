"""Settings: the rules file as it is on disk (read-only), its validation, and reloading it (audited).

The file is edited where it lives (``HUB_RULES_FILE``); this page shows what a reload would find:
every problem with its line, column and field, the same checks the hub runs when it loads the file.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hub.deps import RuntimeDep, SessionDep
from hub.policy.loader import RuleProblem, RulesError, load_rules_bytes, read_rules_bytes
from hub.policy.reload import reload_recorded
from hub.policy.store import RulesStore
from hub.ui.auth import CsrfDep, WebAdminDep
from hub.ui.settings_tabs import TABS
from hub.ui.templating import render

router = APIRouter()


def file_check(store: RulesStore) -> tuple[str | None, list[RuleProblem]]:
    """The file's text (None if unreadable) and its problems (empty: a reload would succeed)."""
    try:
        data = read_rules_bytes(store.path)
    except RulesError as exc:
        return None, exc.problems
    text = data.decode("utf-8", errors="replace")
    try:
        load_rules_bytes(data, str(store.path))
    except RulesError as exc:
        return text, exc.problems
    return text, []


@router.get("/ui/settings/rules", response_class=HTMLResponse)
async def rules_page(request: Request, runtime: RuntimeDep, _admin: WebAdminDep) -> Response:
    """The rules file on disk with its validation, and which version is in force."""
    return _page(request, runtime.rules, reloaded=request.query_params.get("reloaded") == "1")


@router.post("/ui/settings/rules/reload", response_class=HTMLResponse)
async def reload_rules(
    request: Request, session: SessionDep, runtime: RuntimeDep, admin: WebAdminDep, _csrf: CsrfDep
) -> Response:
    """Re-read the file now (as ``POST /api/rules/reload``); a broken file is refused and the rules in force kept."""
    store = runtime.rules
    try:
        reload_recorded(session, store, actor=admin.actor)
    except RulesError:
        return _page(request, store, refused=True, status_code=422)
    await session.commit()
    return RedirectResponse("/ui/settings/rules?reloaded=1", status_code=303)


def _page(
    request: Request, store: RulesStore, *, reloaded: bool = False, refused: bool = False, status_code: int = 200
) -> Response:
    text, problems = file_check(store)
    return render(
        request,
        "ui/app/settings_rules.html.j2",
        status_code=status_code,
        tabs=TABS,
        tab="rules",
        store=store,
        text=text,
        lines=(text or "").splitlines(),
        problems=problems,
        problem_lines={p.line for p in problems if p.line is not None},
        last_error=store.last_error,
        reloaded=reloaded,
        refused=refused,
    )
