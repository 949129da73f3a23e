"""Calls: one record per Twilio call leg, its recordings, and per-rep call reports."""
