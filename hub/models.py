"""Every table, imported in one place so Alembic and tests see the whole schema."""

from hub.accounts.models import User, UserSession
from hub.audit.models import AuditEntry
from hub.auth.models import ApiKey
from hub.calls.models import Call, CallRecording
from hub.contacts.models import Contact, ContactIdentity
from hub.db import Base
from hub.deals.models import Deal, DealProduct, DealStageChange
from hub.email.models import EmailEvent, EmailMessage, Suppression
from hub.forms.models import FormSource
from hub.imports.models import ImportedRow, ImportFile, ImportRowError, LeadImport
from hub.inbox.models import InboundEvent, WebhookNonce
from hub.notify.models import Notification
from hub.outbound.models import WebhookDelivery, WebhookEndpoint
from hub.privacy.models import ConsentEvent, ConsentState, ContactErasure
from hub.reports.models import ChannelCost
from hub.reps.models import Rep, RepTarget, Team
from hub.routing.models import Assignment, Deadline, QueuedLead, RepPerformance, RoutingPool, RoutingTurn, StageChange
from hub.sequences.models import EmailTemplate, Enrollment, Sequence
from hub.tasks.models import Task
from hub.timeline.models import RepWork, TimelineEntry

__all__ = [
    "ApiKey",
    "Assignment",
    "AuditEntry",
    "Base",
    "Call",
    "CallRecording",
    "ChannelCost",
    "ConsentEvent",
    "ConsentState",
    "Contact",
    "ContactErasure",
    "ContactIdentity",
    "Deadline",
    "Deal",
    "DealProduct",
    "DealStageChange",
    "EmailEvent",
    "EmailMessage",
    "EmailTemplate",
    "Enrollment",
    "FormSource",
    "ImportFile",
    "ImportRowError",
    "ImportedRow",
    "InboundEvent",
    "LeadImport",
    "Notification",
    "QueuedLead",
    "Rep",
    "RepPerformance",
    "RepTarget",
    "RepWork",
    "RoutingPool",
    "RoutingTurn",
    "Sequence",
    "StageChange",
    "Suppression",
    "Task",
    "Team",
    "TimelineEntry",
    "User",
    "UserSession",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookNonce",
]
