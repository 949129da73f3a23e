"""Reports for managers: aggregates over calls (and, later, the funnel)."""
