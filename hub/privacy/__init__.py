"""Privacy: marketing-email consent, GDPR export of a contact, and erasure."""
