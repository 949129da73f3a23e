"""The outbox: every email the hub queued or sent, readable as JSON or as the .eml that went out.

With no SMTP relay configured (the embedded default) this is where a newcomer sees what would be sent.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage as MimeMessage
from email.message import MIMEPart
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict

from hub import clock
from hub.contacts.normalize import InvalidIdentity, normalize_email
from hub.deps import ManagerDep, RuntimeDep, SessionDep
from hub.downloads import attachment_headers
from hub.email.models import EmailMessage
from hub.errors import BadRequest, Forbidden, NotFound
from hub.mail import repository
from hub.mail.links import LinkMaker
from hub.mail.wire import mime_for
from hub.pagination import Page, decode_id_cursor, encode_cursor
from hub.reps.visibility import Scope, ScopeDep
from hub.validation import MAX_ID

router = APIRouter(tags=["outbox"])


async def outbox_scope(_principal: ManagerDep, scope: ScopeDep) -> Scope:
    """The outbox holds every email to every contact and rep: admins and managers who see every lead."""
    if not scope.everything:
        raise Forbidden("the outbox shows every email the hub sends: admins and managers who see every lead")
    return scope


OutboxScopeDep = Annotated[Scope, Depends(outbox_scope)]
MessageIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="a message id")]
Status = Literal[
    "queued",
    "held",
    "sending",
    "sent",
    "failed",
    "unknown",
    "suppressed",
    "cancelled",
    "delivered",
    "bounced",
    "dropped",
]
Kind = Literal["sequence", "test", "notification", "manual"]


class OutboxItem(BaseModel):
    """One message in the outbox."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    status: str
    recipient: str
    subject: str | None
    sender: str | None
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    last_error: str | None
    sequence_id: int | None
    step_key: str | None
    variant: str | None


class OutboxMessage(OutboxItem):
    """One message with its headers and both bodies, as handed (or to be handed) to SMTP."""

    contact_id: int | None
    reply_to: str | None
    rfc_message_id: str | None
    smtp_code: int | None
    next_attempt_at: datetime | None
    failed_at: datetime | None
    headers: list[tuple[str, str]]
    text: str
    html: str


@router.get("/api/outbox", response_model=Page[OutboxItem])
async def list_outbox(
    session: SessionDep,
    _scope: OutboxScopeDep,
    status: Status | None = None,
    kind: Kind | None = None,
    recipient: Annotated[str | None, Query(max_length=320)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[OutboxItem]:
    """Messages the hub queued or sent, newest first; filter by status, kind or recipient."""
    address = None
    if recipient is not None:
        try:
            address = normalize_email(recipient)
        except InvalidIdentity:
            raise BadRequest(f"{recipient!r} is not an email address", field="recipient") from None
    found = await repository.list_outbox(
        session,
        limit=limit + 1,
        before_id=decode_id_cursor(cursor) if cursor else None,
        status=status,
        kind=kind,
        recipient=address,
    )
    page = found[:limit]
    next_cursor = encode_cursor([page[-1].id]) if len(found) > limit else None
    return Page(items=[OutboxItem.model_validate(m) for m in page], next_cursor=next_cursor)


@router.get(
    "/api/outbox/{message_id}.eml",
    response_class=Response,
    responses={200: {"content": {"message/rfc822": {}}}},
)
async def outbox_eml(
    message_id: MessageIdPath, session: SessionDep, runtime: RuntimeDep, _scope: OutboxScopeDep
) -> Response:
    """The message as an .eml file (what the relay got, or would get)."""
    message = await _message(session, message_id)
    return _eml(_mime(message, runtime))


@router.get("/api/outbox/{message_id}", response_model=OutboxMessage)
async def outbox_message(
    message_id: MessageIdPath,
    session: SessionDep,
    runtime: RuntimeDep,
    _scope: OutboxScopeDep,
    format: Literal["json", "eml"] = "json",
) -> OutboxMessage | Response:
    """One message with headers and both bodies; ``?format=eml`` gives the .eml file instead."""
    message = await _message(session, message_id)
    mime = _mime(message, runtime)
    if format == "eml":
        return _eml(mime)
    text_part, html_part = mime.get_body(("plain",)), mime.get_body(("html",))
    return OutboxMessage.model_validate(
        {
            **OutboxItem.model_validate(message).model_dump(),
            "contact_id": message.contact_id,
            "reply_to": message.reply_to,
            "rfc_message_id": message.rfc_message_id,
            "smtp_code": message.smtp_code,
            "next_attempt_at": message.next_attempt_at,
            "failed_at": message.failed_at,
            "headers": [(name, str(value)) for name, value in mime.items()],
            "text": _content(text_part),
            "html": _content(html_part),
        }
    )


async def _message(session: SessionDep, message_id: int) -> EmailMessage:
    message = await repository.get_message(session, message_id)
    if message is None:
        raise NotFound(f"message {message_id} does not exist", field="message_id")
    return message


def _mime(message: EmailMessage, runtime: RuntimeDep) -> MimeMessage:
    links = LinkMaker(runtime.settings.public_url, runtime.secret_key, runtime.secret_key_fallbacks)
    sent_at = message.sent_at or message.created_at or clock.now()
    return mime_for(message, runtime.settings, links, sent_at)


def _content(part: MIMEPart | None) -> str:
    # Parts are encoded for SMTP (CRLF line ends); JSON readers expect plain newlines.
    return str(part.get_content()).replace("\r\n", "\n") if part is not None else ""


def _eml(mime: MimeMessage) -> Response:
    return Response(
        content=mime.as_bytes(),
        media_type="message/rfc822",
        headers=attachment_headers("message.eml"),  # the recipient and the whole body
    )
