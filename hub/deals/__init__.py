"""Deals (opportunities): what a contact may buy, how far it got, and how it ended."""
