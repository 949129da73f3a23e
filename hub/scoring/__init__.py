"""Warmth: points from the rules file, decayed over time, and hot/warm/cold buckets with hysteresis."""
