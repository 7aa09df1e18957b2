"""Authentication and authorisation: realms, tokens, the request guard."""
