"""STUB — replaced by the auth work."""
def install(app):
    pass
