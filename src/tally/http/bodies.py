"""Request bodies: MAX_CONTENT_LENGTH holds for streamed (chunked) bodies too, and a body that is
stored or looked up in SQL may hold no string a database cannot store (NUL, a lone surrogate)."""
from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable

from flask import Request, request
from werkzeug.exceptions import RequestEntityTooLarge

from tally.errors import ValidationFailed

# A JSON escape that may decode to NUL or a surrogate; only then is the body parsed to look.
_SUSPECT_ESCAPE = re.compile(rb"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
UNSTORABLE = "must not contain NUL characters or unpaired surrogates"


class LimitedRequest(Request):
    """Flask's request, except that a body without Content-Length (chunked) which reaches
    MAX_CONTENT_LENGTH is a 413: werkzeug stops reading there and would hand on the cut-off
    prefix (an "invalid JSON" 400 at best). A Content-Length over the limit is werkzeug's 413."""

    def get_data(self, cache: bool = True, as_text: bool = False,  # type: ignore[override]
                 parse_form_data: bool = False) -> Any:
        data = super().get_data(cache=cache, as_text=False, parse_form_data=parse_form_data)
        limit = self.max_content_length
        if self.content_length is None and limit is not None and len(data) >= limit:
            raise RequestEntityTooLarge()
        return data.decode(errors="replace") if as_text else data


def storable_body(view: Callable[..., Any]) -> Callable[..., Any]:
    """Before the body is validated: a JSON string holding NUL or an unpaired surrogate is a 400
    naming where it is. PostgreSQL refuses NUL in text and neither database driver encodes a
    lone surrogate, so such a value, written or looked up, was a 500. (Not on POST /ticket/count:
    its strings are filter ids, where anything malformed is the contract's 422.)"""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check_storable(request.get_data(cache=True))
        return view(*args, **kwargs)

    return wrapper


def check_storable(data: bytes) -> None:
    """Raise ValidationFailed naming the first string of the JSON `data` that cannot be stored;
    a body that is not JSON is left to the parser's own error."""
    if not _SUSPECT_ESCAPE.search(data):
        return  # the common case: no escape that could decode to such a character
    try:
        document = json.loads(data)
    except ValueError:
        return
    where = unstorable_path(document, "")
    if where is not None:
        raise ValidationFailed(details={where or "body": [UNSTORABLE]})


def unstorable_path(value: Any, path: str) -> str | None:
    """The path (`events[0].data.category`) of the first string, or key, in `value` that holds
    NUL or an unpaired surrogate; None when there is none."""
    if isinstance(value, str):
        return path if not storable(value) else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else key
            if not storable(key):
                return path or "body"
            found = unstorable_path(item, inner)
            if found is not None:
                return found
    return None


def storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
