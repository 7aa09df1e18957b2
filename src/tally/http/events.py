"""STUB — replaced by the events work."""
from flask_smorest import Blueprint

blp = Blueprint("events", __name__, url_prefix="/api/v2/ticketing")
