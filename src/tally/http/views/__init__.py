"""tally.http.views."""
