"""The rules file: warmth scoring, routing, SLAs and the pipeline, as sales managers write them."""
