"""The counting core: pure Python, no Flask, Redis, RQ or SQLAlchemy imports."""
