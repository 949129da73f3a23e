"""The manager page's slice controls, read exactly as the report API reads its query.

``GET /api/reports/...`` validates its window and slice parameters with the signature of
:func:`hub.reports.params.report_request` (FastAPI ``Query`` constraints) and then its body (time zone,
window bounds, role reach). The page builds a pydantic model from that same signature and then calls
the same function, so a bad ``country`` or a rep outside the manager's teams is refused with the same
message and field as the API; the page shows it inline instead of as JSON.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ValidationError, create_model
from sqlalchemy.ext.asyncio import AsyncSession

from hub.deps import Runtime
from hub.errors import UnprocessableInput
from hub.reports.funnel_schemas import Subject
from hub.reports.params import ReportRequest, report_request
from hub.reps.visibility import Scope

NOT_QUERY = frozenset({"session", "scope", "runtime"})
"""Parameters of report_request that FastAPI injects rather than reads from the URL."""
PAGE_ONLY = ("subject",)
SUBJECTS: tuple[Subject, ...] = ("leads", "deals")


@cache
def report_query_model() -> type[BaseModel]:
    """A pydantic model of report_request's URL parameters (same names, aliases and constraints)."""
    hints = typing.get_type_hints(report_request, include_extras=True)
    fields: dict[str, Any] = {
        name: (hints[name], parameter.default)
        for name, parameter in inspect.signature(report_request).parameters.items()
        if name not in NOT_QUERY
    }
    fields["subject"] = (Literal["leads", "deals"], "leads")
    model: type[BaseModel] = create_model("ReportQuery", **fields)
    return model


@dataclass(frozen=True)
class Slice:
    """A validated report query for the page's panels, and the query text that reproduces it."""

    request: ReportRequest
    subject: Subject
    query: dict[str, str]
    """The non-empty parameters as given (after validation), for the panels' URLs and the form."""

    @property
    def whole_window(self) -> ReportRequest:
        """The same request as one period (the charts and grids show the window as a whole)."""
        return replace(self.request, window=replace(self.request.window, interval=None))


def _given(params: Mapping[str, str]) -> dict[str, str]:
    model = report_query_model()
    names = {field.alias or name for name, field in model.model_fields.items()}
    return {k: v.strip() for k, v in params.items() if k in names and k != "format" and v.strip() != ""}


async def read_slice(session: AsyncSession, scope: Scope, runtime: Runtime, params: Mapping[str, str]) -> Slice:
    """The page's query as a ReportRequest; 422 (or 403) naming the field, worded as the API words it."""
    given = _given(params)
    try:
        parsed = report_query_model().model_validate(given)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise UnprocessableInput(f"{field}: {first['msg']}", field=field) from None
    values = parsed.model_dump()
    subject: Subject = values.pop("subject")
    request = await report_request(session, scope, runtime, **values)
    return Slice(request=request, subject=subject, query=given)
