"""What the client raises: everything derives from `WendaError`."""

from __future__ import annotations


class WendaError(Exception):
    """Base of every error this package raises."""


class APIError(WendaError):
    """The server answered with an error.

    `code` is the server's stable error code (`empty_query`, `unknown_collection`,
    `unauthorized`, `overloaded`, ...; the server's docs/api.md lists them all), `status` the HTTP
    status and `message` the server's explanation for people. An error that ends a streamed
    answer (an `error` event: the LLM failed mid-answer) has the status its code has when it
    comes before the stream (502 for `upstream_unavailable`, 504 for `upstream_timeout`, ...).
    """

    def __init__(self, status: int, code: str, message: str, request_id: str | None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        """The server's `x-request-id` for this request, which its log lines carry."""


class TransportError(WendaError):
    """No answer came: the server could not be reached, or the request timed out; or a
    streamed answer broke off before its end.

    The underlying `httpx` exception, if any, is the `__cause__`.
    """
