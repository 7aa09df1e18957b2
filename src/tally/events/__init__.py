"""Change events: validation, ingest into SQL with an outbox, and applying that outbox."""
