"""Every table, imported in one place so Alembic and tests see the whole schema."""

from hub.auth.models import ApiKey
from hub.contacts.models import Contact, ContactIdentity
from hub.db import Base
from hub.forms.models import FormSource
from hub.inbox.models import InboundEvent
from hub.timeline.models import TimelineEntry

__all__ = ["ApiKey", "Base", "Contact", "ContactIdentity", "FormSource", "InboundEvent", "TimelineEntry"]
