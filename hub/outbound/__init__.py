"""Outbound webhooks (Standard Webhooks signed) and the "engaged now" alerts to reps."""
