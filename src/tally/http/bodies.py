"""What tally reads from a request, by one set of rules wherever it is read (contract §2).

- The body: MAX_CONTENT_LENGTH holds for streamed (chunked) bodies too; a non-empty body must be
  declared JSON (else 415) and be UTF-8 JSON nested at most MAX_JSON_DEPTH deep (checked before
  any parser recurses into it) that parses (else 400); `LimitedRequest.json_body` applies them
  and every JSON body is read through it (webargs' parser for `@blp.arguments`,
  `storable_body`).
- A body that is stored or looked up in SQL may hold no string a database cannot store (NUL, a
  lone surrogate).
- The query string: a parameter given twice is a 400, wherever `request.args` is read.
"""
from __future__ import annotations

import functools
import json
import re
from itertools import accumulate
from typing import Any, Callable

import flask_smorest
from flask import Request, request
from marshmallow import Schema
from webargs.core import missing
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from tally.core.cache import Cache
from tally.errors import UnsupportedMediaType, ValidationFailed
from tally.services.container import Caches
from tally.http.hot_path import Remembered

# A JSON escape that may decode to NUL or a surrogate; only then is the body parsed to look.
_SUSPECT_ESCAPE = re.compile(rb"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
UNSTORABLE = "must not contain NUL characters or unpaired surrogates"
INVALID_JSON = "Invalid JSON body."  # webargs' words, which clients already match
# Deepest nesting of arrays and objects a body may have: tally's deepest (a filter definition of
# 5 nested groups) needs about 15; Python's parser recurses once per level.
MAX_JSON_DEPTH = 64
# A JSON string, or one never closed (then the rest of the body: a parser fails there, deeper
# brackets unreached). Possessive and always matching at a quote, so never retried: linear.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+\\?(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_UNREAD = object()


class LimitedRequest(Request):
    """Flask's request with tally's reading rules (see the module docstring)."""

    def get_data(self, cache: bool = True, as_text: bool = False,  # type: ignore[override]
                 parse_form_data: bool = False) -> Any:
        """The body; one without Content-Length (chunked) which reaches MAX_CONTENT_LENGTH is a
        413: werkzeug stops reading there and would hand on the cut-off prefix (an "invalid
        JSON" 400 at best). A Content-Length over the limit is werkzeug's 413."""
        data = super().get_data(cache=cache, as_text=False, parse_form_data=parse_form_data)
        limit = self.max_content_length
        if self.content_length is None and limit is not None and len(data) >= limit:
            raise RequestEntityTooLarge()
        return data.decode(errors="replace") if as_text else data

    def json_body(self) -> Any:
        """The body as a JSON document, or webargs' `missing` when it is empty (the schema then
        names what is required). UnsupportedMediaType (415) for a body not declared JSON,
        ValidationFailed (400) for one nested deeper than MAX_JSON_DEPTH or that does not parse.
        Read once per request."""
        document = self.__dict__.get("_tally_json", _UNREAD)
        if document is _UNREAD:
            document = self.__dict__["_tally_json"] = _load_json(self.get_data(cache=True),
                                                                 self.is_json, self.mimetype)
        return document

    @property
    def args(self) -> ImmutableMultiDict[str, str]:
        """The query string's parameters; ValidationFailed (400) naming each one given twice."""
        args = super().args
        repeated = [key for key, values in args.lists() if len(values) > 1]
        if repeated:
            raise ValidationFailed(details={key: ["Given more than once."] for key in repeated})
        return args


def _load_json(data: bytes, is_json: bool, mimetype: str) -> Any:
    if not data:
        return missing
    if not is_json:
        raise UnsupportedMediaType(details={"contentType": mimetype or None})
    if too_deep(data):
        raise ValidationFailed(f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels",
                               {"body": [f"Nested deeper than {MAX_JSON_DEPTH} levels."]})
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
        raise ValidationFailed(details=[INVALID_JSON]) from None


def too_deep(data: bytes) -> bool:
    """True when arrays and objects nest deeper than MAX_JSON_DEPTH in the JSON `data`, judged
    without parsing it: by the brackets outside strings (for a body that is not JSON, at least as
    deep as a parser would get before its error)."""
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH:
        return False  # nothing nests deeper than it has brackets: the common case, at once
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > MAX_JSON_DEPTH


class BodyParser(FlaskParser):
    """webargs' Flask parser reading JSON bodies by LimitedRequest.json_body's rules (webargs'
    own reads a body without a JSON Content-Type as no body, and recurses into any depth), and
    answering the loads of a schema given to `remember` from what the same raw input loaded to.

    Both through webargs' public overrides: `load_json` (a location loader) and `parse`."""

    def __init__(self) -> None:
        super().__init__()
        # one entry per `remember` call, made at import by the views: bounded by the source
        self._remembered: dict[int, tuple[Schema, Remembered[Any]]] = {}

    def remember(self, schema: Schema, raw: Callable[[], bytes],
                 cache: Callable[[Caches], Cache[bytes, Any]]) -> Remembered[Any]:
        """Remember what `schema` loaded to by the request's `raw()` bytes (all the bytes its
        load depends on: a pure function of them) in the app's cache `cache(caches)`, which a
        fast path reads too."""
        remembered: Remembered[Any] = Remembered(raw, cache)
        self._remembered[id(schema)] = (schema, remembered)
        return remembered

    def parse(self, argmap: Any, req: Any = None, **kwargs: Any) -> Any:
        load = functools.partial(super().parse, argmap, req, **kwargs)
        found = self._remembered.get(id(argmap))  # the schema is held there: its id stays its own
        return load() if found is None else found[1](load)

    def load_json(self, req: Request, schema: Schema) -> Any:  # type: ignore[override]
        return req.json_body()  # type: ignore[attr-defined]


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose `arguments` parse with BodyParser (set the way its
    changelog gives for another parser: overriding Blueprint.ARGUMENTS_PARSER)."""

    ARGUMENTS_PARSER = BodyParser()

    def remember(self, schema: Schema, raw: Callable[[], bytes],
                 cache: Callable[[Caches], Cache[bytes, Any]]) -> Remembered[Any]:
        """`arguments(schema)` answers the same raw input (`raw()`: every byte its load depends
        on) with what it loaded to before, kept in the app's cache `cache(caches)`: a badge or a
        sidebar resends the very same query and body every few seconds."""
        return self.ARGUMENTS_PARSER.remember(schema, raw, cache)


def storable_body(view: Callable[..., Any]) -> Callable[..., Any]:
    """Before the body is validated: a JSON string holding NUL or an unpaired surrogate is a 400
    naming where it is. PostgreSQL refuses NUL in text and neither database driver encodes a
    lone surrogate, so such a value, written or looked up, was a 500. (Not on POST /ticket/count:
    its strings are filter ids, where anything malformed is the contract's 422.)"""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check_storable(request)  # type: ignore[arg-type]
        return view(*args, **kwargs)

    return wrapper


def check_storable(req: LimitedRequest) -> None:
    """Raise ValidationFailed naming the first string of the request's JSON body that cannot be
    stored (after json_body's own 415 and 400)."""
    document = req.json_body()
    if document is missing or not _SUSPECT_ESCAPE.search(req.get_data(cache=True)):
        return  # the common case: no escape that could decode to such a character
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
