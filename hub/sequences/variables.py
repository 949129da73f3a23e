"""The variables a step's email is rendered with: one contact's, or a made-up contact's for checks and previews.

The variables (``VARIABLES``) a template may use:

- ``contact``: ``id, name, first_name, last_name, email, phone, company, job_title, country,
  time_zone, stage, bucket, source, tags, custom`` (``custom`` is a dict of the contact's custom
  fields: write ``contact.custom.get("plan")`` or ``contact.custom.plan | default("")``, since a
  field one contact lacks would otherwise stop the email);
- ``owner``: ``name, email, phone`` of the contact's owner rep, or None (guard with ``{% if owner %}``);
- ``company``: ``name, address`` (HUB_COMPANY_NAME, HUB_COMPANY_ADDRESS);
- ``sender``: ``name, email`` the email comes from;
- ``unsubscribe_url``: the message's one-click unsubscribe link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from typing import Any

from hub.config import Settings
from hub.contacts.models import Contact
from hub.reps.models import Rep
from hub.sequences.schemas import SequenceSpec

VARIABLES: frozenset[str] = frozenset({"contact", "owner", "company", "sender", "unsubscribe_url"})
CONTACT_FIELDS = (
    "id",
    "name",
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "job_title",
    "country",
    "time_zone",
    "stage",
    "bucket",
    "source",
    "tags",
    "custom",
)


@dataclass(frozen=True)
class RenderContext:
    """The variables one email is rendered with (see the module docstring)."""

    contact: dict[str, Any]
    owner: dict[str, Any] | None
    company: dict[str, Any]
    sender: dict[str, Any]
    unsubscribe_url: str

    def as_dict(self) -> dict[str, Any]:
        """The variables as jinja2 receives them."""
        return {
            "contact": self.contact,
            "owner": self.owner,
            "company": self.company,
            "sender": self.sender,
            "unsubscribe_url": self.unsubscribe_url,
        }


def split_name(name: str | None) -> tuple[str | None, str | None]:
    """First and last name of a full name ("Ada King Lovelace" -> "Ada", "King Lovelace")."""
    words = (name or "").split()
    if not words:
        return None, None
    return words[0], " ".join(words[1:]) or None


def context_for(
    contact: Contact,
    *,
    email: str | None,
    phone: str | None,
    owner: Rep | None,
    sender_name: str,
    sender_email: str,
    company_name: str,
    company_address: str,
    unsubscribe_url: str,
) -> RenderContext:
    """The variables of one contact's email."""
    first, last = split_name(contact.name)
    return RenderContext(
        contact={
            "id": contact.id,
            "name": contact.name,
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": phone,
            "company": contact.company,
            "job_title": contact.job_title,
            "country": contact.country,
            "time_zone": contact.time_zone,
            "stage": contact.stage,
            "bucket": contact.bucket,
            "source": contact.source,
            "tags": list(contact.tags or []),
            "custom": dict(contact.custom_fields or {}),
        },
        owner=None if owner is None else {"name": owner.name, "email": owner.email, "phone": owner.phone},
        company={"name": company_name, "address": company_address},
        sender={"name": sender_name, "email": sender_email},
        unsubscribe_url=unsubscribe_url,
    )


def sample_context(*, full: bool = True, unsubscribe_url: str | None = None) -> RenderContext:
    """A made-up contact's variables: every field set (``full``), or no owner and optional fields empty."""
    sample = _sample(full=full)
    if unsubscribe_url is None:
        return sample
    return RenderContext(sample.contact, sample.owner, sample.company, sample.sender, unsubscribe_url)


def _sample(*, full: bool) -> RenderContext:
    contact: dict[str, Any] = dict.fromkeys(CONTACT_FIELDS)
    contact.update(id=1, stage="new", tags=[], custom={})
    if full:
        contact.update(
            name="Ada Lovelace",
            first_name="Ada",
            last_name="Lovelace",
            email="ada@example.com",
            phone="+441234567890",
            company="Analytical Engines Ltd",
            job_title="Mathematician",
            country="GB",
            time_zone="Europe/London",
            bucket="warm",
            source="website",
            tags=["newsletter"],
        )
    owner = {"name": "Sam Seller", "email": "sam@example.com", "phone": "+15555550100"} if full else None
    return RenderContext(
        contact=contact,
        owner=owner,
        company={"name": "Example Co", "address": "1 Example Street, Springfield"},
        sender={"name": "Example Co" if full else "", "email": "sales@example.com"},
        unsubscribe_url="https://hub.example.com/u/sample-token",
    )


SAMPLES = (
    ("", _sample(full=True)),
    (
        " (with a contact that has no owner and empty optional fields: guard with {% if ... %} or | default)",
        _sample(full=False),
    ),
)
"""The sample contexts a template must render against to be saved, each with what to add to its error."""


@dataclass(frozen=True)
class SequenceSender:
    """Who a sequence's emails come from: the spec's sender, with HUB_MAIL_FROM filling what it leaves out."""

    name: str
    email: str
    from_header: str | None
    """The From of the message row, or None when it is HUB_MAIL_FROM itself."""


def sender_of(spec: SequenceSpec, mail_from: str) -> SequenceSender:
    """The sequence's sender."""
    default_name, default_email = parseaddr(mail_from)
    name, address = spec.sender.name or default_name, str(spec.sender.email or default_email)
    own = spec.sender.name is not None or spec.sender.email is not None
    return SequenceSender(name, address, formataddr((name, address)) if own else None)


def email_context(
    contact: Contact,
    identities: Sequence[tuple[str, str]],
    owner: Rep | None,
    sender: SequenceSender,
    settings: Settings,
    *,
    unsubscribe_url: str,
) -> RenderContext:
    """The variables of one contact's email, from its identities and the deployment's company settings."""
    return context_for(
        contact,
        email=next((value for kind, value in identities if kind == "email"), None),
        phone=next((value for kind, value in identities if kind == "phone"), None),
        owner=owner,
        sender_name=sender.name,
        sender_email=sender.email,
        company_name=settings.company_name,
        company_address=settings.company_address,
        unsubscribe_url=unsubscribe_url,
    )
