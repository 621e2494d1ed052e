"""Reading request bodies the way Canvas clients send them: JSON, urlencoded or multipart forms, or the query string."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response

from consumer.api.errors import CanvasError, bad_request
from consumer.reports.catalogue import parameters_from_pairs, quoted
from consumer.text import one_line

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 10
# Left out of Link URLs, as Canvas's EXCLUDE_IN_PAGINATION_LINKS does.
CREDENTIAL_PARAMETERS = ("access_token", "api_key")
MAX_MESSAGE = 10_000
# A report request is two levels deep; json.loads itself gives up (RecursionError) near 1,000.
MAX_JSON_DEPTH = 32
# Ids have at most 19 digits; Python's int() refuses more than 4,300.
LONGEST_JSON_INT = 40
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class LongNumber:
    """A JSON integer too long to be any value this API takes, kept as its digits so the parameter can be named."""

    def __init__(self, digits: str) -> None:
        self.digits = digits

    def __str__(self) -> str:
        return self.digits

    def __repr__(self) -> str:
        return f"{self.digits[:20]}... ({len(self.digits.lstrip('-'))} digits)"


def _json_int(digits: str) -> int | LongNumber:
    return int(digits) if len(digits) <= LONGEST_JSON_INT else LongNumber(digits)


def parse_json(body: bytes) -> Any:
    """A JSON body, or 400: not JSON, nested deeper than MAX_JSON_DEPTH, or holding text that is not Unicode."""
    try:
        document = json.loads(body, parse_int=_json_int)
    except RecursionError:
        raise bad_request(f"the request body: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise bad_request("the request body is not valid JSON (send JSON or form fields)") from None
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            check_text("the request body", value)
        elif isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise bad_request(f"the request body: JSON nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(value, dict):
                for key in value:
                    check_text("the request body", key)
            stack += [(item, depth + 1) for item in (value.values() if isinstance(value, dict) else value)]
    return document


def check_text(where: str, text: str) -> None:
    """400 for text holding a lone surrogate (JSON's "\\ud800", or a form in a codec that makes one): no database stores it."""
    found = _SURROGATE.search(text)
    if found:
        raise bad_request(f"{where}: holds {found.group()!r}, half of a UTF-16 surrogate pair, which is not text")


async def request_fields(request: Request) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """(the JSON body object, or {}; the form fields and query parameters as pairs)."""
    pairs: list[tuple[str, Any]] = list(request.query_params.multi_items())
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form()
        except CanvasError:
            raise  # the body is over the limit (413)
        except Exception as error:  # a malformed form is the client's error
            raise bad_request(f"the form body cannot be read: {one_line(str(error), 200)}") from None
        pairs += [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
        for key, value in pairs:
            check_text(f"the form field {quoted(key)}", f"{key}{value}")
        return {}, pairs
    body = await request.body()
    if not body.strip():
        return {}, pairs
    document = parse_json(body)
    if not isinstance(document, dict):
        raise bad_request(f"the JSON body must be an object, not {type(document).__name__}")
    return document, pairs


async def report_parameters(request: Request) -> dict[str, Any]:
    """The `parameters` of a report request, from a JSON body or `parameters[...]` fields."""
    document, pairs = await request_fields(request)
    parameters = parameters_from_pairs(pairs)
    given = document.get("parameters")
    if given is not None:
        if not isinstance(given, dict):
            raise bad_request(f"parameters: must be an object (got {quoted(given)})")
        parameters.update(given)
    return parameters


async def cancel_message(request: Request) -> str | None:
    document, pairs = await request_fields(request)
    message = document.get("message")
    for key, value in pairs:
        if key == "message":
            message = value
    if message is not None and not isinstance(message, str):
        raise bad_request(f"message: must be a string (got {quoted(message)})")
    if message is not None and ("\x00" in message or len(message) > MAX_MESSAGE):
        raise bad_request(f"message: must be text of at most {MAX_MESSAGE} characters without NUL (got {quoted(message)})")
    return message


def window(page: int, per_page: int) -> tuple[int, int]:
    """(offset, limit) of a page; `per_page` is capped at 100, as Canvas does."""
    limit = max(1, min(per_page, MAX_PER_PAGE))
    return (page - 1) * limit, limit


def paginate(request: Request, response: Response, page: int, per_page: int, total: int) -> None:
    """Canvas's `Link` header (current, next, prev, first, last) on the response, with the request's other query parameters."""
    _, per_page = window(page, per_page)
    last = max(1, -(-total // per_page))
    # As Canvas: no credential in the links (a response header is logged and shared more readily than a request).
    url = request.url.remove_query_params(["page", "per_page", *CREDENTIAL_PARAMETERS])
    public = request.app.state.public_url
    base = f"{public.rstrip('/')}{url.path}{'?' + url.query if url.query else ''}" if public else str(url)
    separator = "&" if "?" in base else "?"

    def link(number: int, rel: str) -> str:
        return f'<{base}{separator}{urlencode({"page": number, "per_page": per_page})}>; rel="{rel}"'

    links = [link(page, "current")]
    if page < last:
        links.append(link(page + 1, "next"))
    if page > 1:
        links.append(link(min(page - 1, last), "prev"))
    links += [link(1, "first"), link(last, "last")]
    response.headers["Link"] = ",".join(links)
