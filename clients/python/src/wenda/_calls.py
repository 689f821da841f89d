"""One `Call` per API operation: what to send and how to read the answer.

The sync and async clients share these builders and differ only in how they send, so the two
cannot disagree about a route, a field or an error. `OPERATIONS` names each route by the
operation id the server's `/openapi.json` gives it; a test holds the two together.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from . import types as t
from ._decode import decode
from ._sse import ServerSentEvent, SSEDecoder
from .errors import APIError, TransportError, WendaError

T = TypeVar("T")

OPERATIONS: dict[str, tuple[str, str]] = {
    "health": ("GET", "/health"),
    "ready": ("GET", "/ready"),
    "info": ("GET", "/v1/info"),
    "collectionSearch": ("POST", "/v1/collections/{collection}/search"),
    "collectionAnswer": ("POST", "/v1/collections/{collection}/answer"),
    "getCollectionPassage": ("GET", "/v1/collections/{collection}/passages/{id}"),
    "collectionSimilarPassages": ("GET", "/v1/collections/{collection}/passages/{id}/similar"),
    "listCollections": ("GET", "/v1/collections"),
    "getCollection": ("GET", "/v1/collections/{collection}"),
    "createCollection": ("PUT", "/v1/collections/{collection}"),
    "deleteCollection": ("DELETE", "/v1/collections/{collection}"),
    "listDocuments": ("GET", "/v1/collections/{collection}/documents"),
    "getDocument": ("GET", "/v1/collections/{collection}/documents/{doc_id}"),
    "putDocument": ("PUT", "/v1/collections/{collection}/documents/{doc_id}"),
    "deleteDocument": ("DELETE", "/v1/collections/{collection}/documents/{doc_id}"),
    "importDocuments": ("POST", "/v1/collections/{collection}/documents:import"),
    "getJob": ("GET", "/v1/jobs/{id}"),
    "createEmbeddings": ("POST", "/v1/embeddings"),
}

# Uploaded files are read as what their suffix says (the server's rule).
_UPLOAD_TYPES = {".jsonl": "application/x-ndjson", ".txt": "text/plain", ".md": "text/markdown"}

# A 503 is a state that passes (loading, overloaded, a database away) and means nothing was
# done, so any request may be sent again; the server says when in `Retry-After`.
_RETRY_STATUS = 503
_LONGEST_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """A request ready to send, with the type its answer decodes into."""

    method: str
    path: str
    answer: type[T]
    params: Mapping[str, str | int | float] | None = None
    json: Any = None
    content: bytes | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    headers: Mapping[str, str] | None = None

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return http.build_request(
            self.method,
            self.path,
            params=self.params,
            json=self.json,
            content=self.content,
            files=self.files,
            headers=self.headers,
        )

    def read(self, response: httpx.Response) -> T:
        """The decoded answer, or the server's error raised as `APIError`."""
        if not response.is_success:
            raise api_error(response)
        try:
            return decode(self.answer, response.json())
        except (ValueError, TypeError) as error:
            # Not JSON, or not the shape the API documents (something else answered).
            raise WendaError(f"unexpected answer to {self.method} {self.path}: {error}") from error


def api_error(response: httpx.Response) -> APIError:
    request_id = response.headers.get("x-request-id")
    try:
        detail = response.json()["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        # Not wenda's error body (a proxy in between, say): keep what there is.
        code, message = f"http_{response.status_code}", response.text[:500]
    return APIError(response.status_code, code, message, request_id)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often, and after how long, a 503 or a refused connection is tried again."""

    max_retries: int
    backoff: float

    def delay(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before trying again, or `None` to give up.

        `response` is `None` when the connection was refused (nothing was sent).
        """
        if attempt >= self.max_retries:
            return None
        if response is not None and response.status_code != _RETRY_STATUS:
            return None
        # Exponential, with jitter so that many clients turned away together do not return
        # together; at least what the server asks for.
        wait: float = self.backoff * 2**attempt * random.uniform(0.5, 1.0)
        if response is not None:
            with contextlib.suppress(ValueError):
                wait = max(wait, float(response.headers.get("retry-after", 0)))
        return min(wait, _LONGEST_WAIT)


def _path(operation: str, **segments: str) -> str:
    escaped = {name: quote(value, safe="") for name, value in segments.items()}
    return OPERATIONS[operation][1].format(**escaped)


def _call(operation: str, answer: type[T], segments: Mapping[str, str], **parts: Any) -> Call[T]:
    return Call(OPERATIONS[operation][0], _path(operation, **segments), answer, **parts)


def _query(options: Mapping[str, Any]) -> dict[str, str | int | float]:
    return {name: value for name, value in options.items() if value is not None}


def health() -> Call[t.Status]:
    return _call("health", t.Status, {})


def ready() -> Call[t.Status]:
    return _call("ready", t.Status, {})


def info() -> Call[t.Info]:
    return _call("info", t.Info, {})


def search(collection: str, query: str, options: t.SearchOptions) -> Call[t.SearchResponse]:
    body = {"query": query, **options}
    return _call("collectionSearch", t.SearchResponse, {"collection": collection}, json=body)


def answer(collection: str, question: str, options: t.AnswerOptions) -> Call[t.Answer]:
    body = {"question": question, **options}
    return _call("collectionAnswer", t.Answer, {"collection": collection}, json=body)


def answer_stream(collection: str, question: str, options: t.AnswerOptions) -> Call[t.Answer]:
    """The answer as Server-Sent Events; `Answer` is the type of the last one (`done`)."""
    body = {"question": question, **options, "stream": True}
    return _call(
        "collectionAnswer",
        t.Answer,
        {"collection": collection},
        json=body,
        headers={"accept": "text/event-stream"},
    )


# The status each error that can end a streamed answer is answered with when it comes before
# the stream starts (docs/api.md); once the stream has started, the HTTP status was 200.
_STREAM_ERROR_STATUS = {
    "upstream_unavailable": 502,
    "upstream_invalid": 502,
    "upstream_timeout": 504,
    "request_timeout": 504,
}
_INTERNAL_ERROR_STATUS = 500
_ANSWER_EVENTS: dict[str, type[t.AnswerSources | t.AnswerDelta | t.Answer]] = {
    "sources": t.AnswerSources,
    "delta": t.AnswerDelta,
    "done": t.Answer,
}


class AnswerStream:
    """The events of a streamed answer, read from its response's bytes as they come: what
    both clients share of `answer_stream`."""

    def __init__(self, call: Call[t.Answer], response: httpx.Response) -> None:
        self._call = call
        kind = response.headers.get("content-type", "")
        if not kind.startswith("text/event-stream"):
            raise WendaError(
                f"unexpected answer to {call.method} {call.path}: "
                f"{kind or 'no content type'}, not text/event-stream"
            )
        self._request_id = response.headers.get("x-request-id")
        self._decoder = SSEDecoder()
        self.done = False
        """Whether the last event, the `Answer`, has come."""

    def feed(self, chunk: bytes) -> Iterator[t.AnswerEvent]:
        """The events `chunk` completes, in order; an `error` event is raised as `APIError`
        where it comes."""
        for event in self._decoder.feed(chunk):
            if self.done:
                return
            read = self._read(event)
            if read is not None:
                yield read

    def _read(self, event: ServerSentEvent) -> t.AnswerEvent | None:
        kind = _ANSWER_EVENTS.get(event.event)
        if kind is None and event.event != "error":
            return None  # an event this client does not know (a later server's): skipped
        try:
            data = json.loads(event.data)
            if kind is not None:
                read = decode(kind, data)
                self.done = isinstance(read, t.Answer)
                return read
            detail = data["error"]
            code, message = str(detail["code"]), str(detail["message"])
        except (ValueError, TypeError, KeyError) as error:
            raise WendaError(
                f"unexpected `{event.event}` event in the answer to {self._call.method} "
                f"{self._call.path}: {error}"
            ) from error
        status = _STREAM_ERROR_STATUS.get(code, _INTERNAL_ERROR_STATUS)
        raise APIError(status, code, message, self._request_id)

    def ended(self, url: str) -> None:
        """At the end of the stream: raises `TransportError` unless the `Answer` came."""
        if not self.done:
            raise TransportError(
                f"the answer from {url} broke off: the stream ended before its `done` event"
            )


def passage(collection: str, passage_id: str) -> Call[t.Passage]:
    return _call("getCollectionPassage", t.Passage, {"collection": collection, "id": passage_id})


def similar(collection: str, passage_id: str, options: t.SimilarOptions) -> Call[t.SimilarResponse]:
    segments = {"collection": collection, "id": passage_id}
    return _call("collectionSimilarPassages", t.SimilarResponse, segments, params=_query(options))


def collections() -> Call[t.CollectionList]:
    return _call("listCollections", t.CollectionList, {})


def collection(name: str) -> Call[t.Collection]:
    return _call("getCollection", t.Collection, {"collection": name})


def create_collection(name: str) -> Call[t.Collection]:
    return _call("createCollection", t.Collection, {"collection": name})


def delete_collection(name: str) -> Call[t.Deleted]:
    return _call("deleteCollection", t.Deleted, {"collection": name})


def documents(collection: str, limit: int | None, cursor: str | None) -> Call[t.DocumentList]:
    params = _query({"limit": limit, "cursor": cursor})
    return _call("listDocuments", t.DocumentList, {"collection": collection}, params=params)


def document(collection: str, doc_id: str) -> Call[t.Document]:
    return _call("getDocument", t.Document, {"collection": collection, "doc_id": doc_id})


def put_document(
    collection: str, doc_id: str, text: str, fields: t.DocumentFields
) -> Call[t.PutDocumentResponse]:
    segments = {"collection": collection, "doc_id": doc_id}
    body = {"text": text, **fields}
    return _call("putDocument", t.PutDocumentResponse, segments, json=body)


def delete_document(collection: str, doc_id: str) -> Call[t.Deleted]:
    return _call("deleteDocument", t.Deleted, {"collection": collection, "doc_id": doc_id})


def import_documents(collection: str, documents: Iterable[t.NewDocument]) -> Call[t.Job]:
    # Serialised whole before sending, so that a retry sends the same bytes.
    lines = (json.dumps(doc, ensure_ascii=False) + "\n" for doc in documents)
    return _call(
        "importDocuments",
        t.Job,
        {"collection": collection},
        content="".join(lines).encode(),
        headers={"content-type": "application/x-ndjson"},
    )


def import_files(collection: str, paths: Iterable[str | Path]) -> Call[t.Job]:
    files = []
    for path in map(Path, paths):
        kind = _UPLOAD_TYPES.get(path.suffix.lower(), "application/octet-stream")
        files.append(("file", (path.name, path.read_bytes(), kind)))
    return _call("importDocuments", t.Job, {"collection": collection}, files=files)


def job(job_id: str) -> Call[t.Job]:
    return _call("getJob", t.Job, {"id": job_id})


def embed(texts: str | list[str], input_type: t.InputType) -> Call[t.EmbeddingsResponse]:
    body = {"input": texts, "input_type": input_type, "encoding_format": "float"}
    return _call("createEmbeddings", t.EmbeddingsResponse, {}, json=body)
