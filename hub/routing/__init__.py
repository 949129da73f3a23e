"""Routing: teams, assignment of leads to reps, first-touch deadlines, redistribution and escalation."""
