"""STUB — replaced by the notifications work."""
from flask_smorest import Blueprint

blp = Blueprint("notifications", __name__, url_prefix="/api/v2/ticketing")
