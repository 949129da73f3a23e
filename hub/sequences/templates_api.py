"""REST endpoints for email templates stored in the database (``/api/email-templates``).

A stored template is checked when it is saved, and refused (409) when a sequence using it would
break. Managers and admins write; reps may read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.deps import AnyRoleDep, ManagerDep, SessionDep
from hub.sequences import service as sequences
from hub.sequences.api import PROBLEMS, TemplateName, TemplateNamePath, TemplatesRootDep, problems_response
from hub.sequences.models import EmailTemplate
from hub.sequences.service import TemplatesInvalid
from hub.sequences.templates import (
    TemplateLibrary,
)
from hub.validation import SafeStr

router = APIRouter(tags=["email templates"])


class EmailTemplateBody(BaseModel):
    """A stored template's content; give html, text or both."""

    model_config = ConfigDict(extra="forbid")

    subject: SafeStr | None = Field(default=None, max_length=500)
    """A suggested subject (kept for reference; a step always states its own)."""
    html: SafeStr | None = Field(default=None, max_length=200_000)
    text: SafeStr | None = Field(default=None, max_length=200_000)

    @model_validator(mode="after")
    def _a_body(self) -> EmailTemplateBody:
        if self.html is None and self.text is None:
            raise ValueError("a template needs html, text or both")
        return self


class EmailTemplateIn(EmailTemplateBody):
    """A new stored template."""

    name: TemplateName


class EmailTemplateOut(BaseModel):
    """A stored template."""

    id: int
    name: str
    subject: str | None
    html: str | None
    text: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, template: EmailTemplate) -> EmailTemplateOut:
        """The API shape of a stored template."""
        return cls(
            id=template.id,
            name=template.name,
            subject=template.subject,
            html=template.html,
            text=template.text,
            created_at=template.created_at,
            updated_at=template.updated_at,
        )


@router.get("/api/email-templates", response_model=list[EmailTemplateOut])
async def list_email_templates(session: SessionDep, _principal: AnyRoleDep) -> list[EmailTemplateOut]:
    """Templates stored in the database (files under templates/emails/ are not listed)."""
    return [EmailTemplateOut.of(t) for t in await sequences.list_templates(session)]


@router.post(
    "/api/email-templates",
    response_model=EmailTemplateOut,
    status_code=201,
    responses=PROBLEMS,
    tags=["email templates"],
)
async def create_email_template(
    body: EmailTemplateIn, session: SessionDep, root: TemplatesRootDep, _p: ManagerDep
) -> Any:
    """Store a template (checked now); a stored name takes precedence over a file of the same name."""
    library = await TemplateLibrary.load(session, root)
    try:
        template = await sequences.save_template(
            session, library, name=body.name, subject=body.subject, html=body.html, text=body.text, create=True
        )
    except TemplatesInvalid as exc:
        return problems_response(exc)
    await session.commit()
    return EmailTemplateOut.of(template)


@router.get("/api/email-templates/{name}", response_model=EmailTemplateOut)
async def read_email_template(name: TemplateNamePath, session: SessionDep, _principal: AnyRoleDep) -> EmailTemplateOut:
    """One stored template."""
    return EmailTemplateOut.of(await sequences.get_template(session, name))


@router.put(
    "/api/email-templates/{name}", response_model=EmailTemplateOut, responses=PROBLEMS, tags=["email templates"]
)
async def replace_email_template(
    name: TemplateNamePath, body: EmailTemplateBody, session: SessionDep, root: TemplatesRootDep, _p: ManagerDep
) -> Any:
    """Replace a stored template's content (409 if a sequence using it would break)."""
    await sequences.get_template(session, name)
    library = await TemplateLibrary.load(session, root)
    try:
        template = await sequences.save_template(
            session, library, name=name, subject=body.subject, html=body.html, text=body.text, create=False
        )
    except TemplatesInvalid as exc:
        return problems_response(exc)
    await session.commit()
    return EmailTemplateOut.of(template)


@router.delete("/api/email-templates/{name}", status_code=204, response_class=Response)
async def delete_email_template(name: TemplateNamePath, session: SessionDep, _p: ManagerDep) -> Response:
    """Delete a stored template no sequence uses (409 naming the sequence otherwise)."""
    await sequences.delete_template(session, await sequences.get_template(session, name))
    await session.commit()
    return Response(status_code=204)
