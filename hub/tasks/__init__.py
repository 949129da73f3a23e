"""Tasks and callback reminders: scheduling in the contact's hours, reminders, the escalation ladder."""
