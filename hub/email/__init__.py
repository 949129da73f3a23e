"""Email: messages the hub sends, provider and tracking events, suppressions."""
