"""Drip email sequences: definitions, enrollments, the step engine and their stats."""
