"""Sending email: MIME building, the SMTP connection pool or capture outbox, throttles, the send loop."""
