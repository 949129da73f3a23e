"""The slices a report can be cut by, and the SQL that reads or filters each from a contact or deal."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.models import Contact
from hub.deals.models import Deal, DealProduct
from hub.reports.params import ReportRequest
from hub.reps.models import Rep

Dimension = Literal[
    "source", "utm_source", "utm_medium", "utm_campaign", "country", "rep", "team", "product", "contact_type"
]
ContactAttribute = Literal["source", "utm_source", "utm_medium", "utm_campaign", "country"]
NONE_LABEL = "(none)"
"""The slice of rows with no value for the dimension."""


def contact_attribute(name: ContactAttribute) -> ColumnElement[Any]:
    """The contact's channel or country column: ``source``, a first-touch UTM field, or ``country``."""
    if name == "source":
        return Contact.source.expression
    if name == "country":
        return Contact.country.expression
    attribute: ColumnElement[Any] = Contact.attribution[name].as_string()
    return attribute


def contact_filters(request: ReportRequest) -> list[ColumnElement[bool]]:
    """WHERE clauses for the channel, country and new/existing filters (``contacts`` must be in the query)."""
    filters = request.filters
    clauses: list[ColumnElement[bool]] = []
    for name in ("source", "utm_source", "utm_medium", "utm_campaign", "country"):
        value = getattr(filters, name)
        if value is not None:
            clauses.append(contact_attribute(name) == value)
    if filters.contact_type == "new":
        clauses.append(Contact.created_at >= request.window.start)
    elif filters.contact_type == "existing":
        clauses.append(Contact.created_at < request.window.start)
    return clauses


def narrowed(query: Select[Any], request: ReportRequest, owner: ColumnElement[int | None]) -> Select[Any]:
    """``query`` kept to the owners the caller may see and the contact filters asked for."""
    owner_clause = request.owner_clause(owner)
    if owner_clause is not None:
        query = query.where(owner_clause)
    return query.where(*contact_filters(request))


def deal_product_filter(request: ReportRequest) -> ColumnElement[bool] | None:
    """A WHERE clause keeping deals with a line of the requested product (``deals`` must be in the query)."""
    if request.filters.product is None:
        return None
    return exists(
        select(DealProduct.id).where(DealProduct.deal_id == Deal.id, DealProduct.product == request.filters.product)
    )


async def teams_of_reps(session: AsyncSession) -> dict[int, int | None]:
    """Each rep's team id (reps are few: read once per report)."""
    # .all(): dict() of a Result would take it for a mapping (it has keys()) and fail.
    return dict((await session.execute(select(Rep.id, Rep.team_id))).all())


def label(value: object) -> str:
    """A slice value as a row key; missing values share one ``(none)`` slice."""
    return NONE_LABEL if value is None or value == "" else str(value)
