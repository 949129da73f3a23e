"""What the API process and the worker processes both build from settings: the automation's reactions."""

from __future__ import annotations

from hub.automation import Reaction
from hub.config import Settings
from hub.outbound.alerts import engaged_alert_reaction, outbound_events_reaction
from hub.sequences.triggers import sequence_reaction
from hub.tasks.automatic import task_reaction


def build_reactions(settings: Settings) -> tuple[Reaction, ...]:
    """Sequence enrollments and stops, automatic tasks, alerts and outbound events, in that order."""
    return (
        sequence_reaction(settings),
        task_reaction(settings),
        engaged_alert_reaction(settings),
        outbound_events_reaction(settings),
    )
