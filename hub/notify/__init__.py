"""Notifications for reps and managers: new leads, missed deadlines, escalations, stuck leads."""
