"""The settings sub-pages, in the order the settings navigation shows them."""

from __future__ import annotations

from typing import NamedTuple


class Tab(NamedTuple):
    """One settings page: its key, title, address and what it is for."""

    key: str
    title: str
    href: str
    about: str


TABS = (
    Tab("forms", "Form sources", "/ui/settings/forms", "where leads come from, with a copy-paste embed snippet"),
    Tab("providers", "Providers", "/ui/settings/providers", "webhook URLs for Twilio, SendGrid, Mailgun, Postmark"),
    Tab("webhooks", "Outbound webhooks", "/ui/settings/webhooks", "endpoints the hub notifies, with delivery logs"),
    Tab("rules", "Rules", "/ui/settings/rules", "the rules file in force and its validation"),
    Tab("users", "Users and API keys", "/ui/settings/users", "dashboard users and keys for other systems"),
    Tab("audit", "Audit log", "/ui/settings/audit", "who did which administrative action, and when"),
)
