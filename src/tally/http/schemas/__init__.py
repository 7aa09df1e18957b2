"""tally.http.schemas.common."""
