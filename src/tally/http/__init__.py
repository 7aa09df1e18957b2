"""The HTTP layer: blueprints, schemas, the envelope and the error renderer."""
