"""`Client` and `AsyncClient`: every route of the API as a method, with the same names,
arguments and answers in both. Requests are built in `_calls`; these classes only send them,
retry what may be retried, and turn failures into `wenda.errors`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any, Self, TypeVar, Unpack

import httpx

from . import _calls as calls
from . import types as t
from ._calls import Call, RetryPolicy
from .errors import APIError, TransportError, WendaError

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_COLLECTION = "default"
_VERSION = "0.1.0"


class _Base:
    """What both clients share: where the server is, the headers every request carries, and
    when a failed request is sent again. Arguments win over the environment."""

    def __init__(
        self,
        url: str | None,
        api_key: str | None,
        timeout: float,
        max_retries: int,
        backoff: float,
    ) -> None:
        self.url = (url or os.environ.get("WENDA_URL") or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("WENDA_API_KEY")
        headers = {"user-agent": f"wenda-client/{_VERSION}"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        self._http_options: dict[str, Any] = {
            "base_url": self.url,
            "headers": headers,
            "timeout": httpx.Timeout(timeout),
        }
        self._retry = RetryPolicy(max_retries, backoff)

    def _wait_after(self, error: httpx.HTTPError, attempt: int, retry: bool) -> float:
        """Seconds to wait before sending again after `error`, or `TransportError` raised.

        Only a refused connection is repeated: any other failure (a timeout, a connection cut)
        may come after the server acted on the request.
        """
        delay = None
        if retry and isinstance(error, httpx.ConnectError):
            delay = self._retry.delay(attempt, None)
        if delay is None:
            raise TransportError(
                f"no answer from {self.url}: {type(error).__name__}: {error}"
            ) from error
        return delay

    def _wait_before_resending(
        self, response: httpx.Response, attempt: int, retry: bool
    ) -> float | None:
        """Seconds to wait before sending again after `response`, or `None` to read it."""
        return self._retry.delay(attempt, response) if retry else None

    def _broke_off(self, error: httpx.HTTPError) -> TransportError:
        """What a stream that failed after it started raises (never sent again: it was
        answering)."""
        return TransportError(
            f"the answer from {self.url} broke off: {type(error).__name__}: {error}"
        )


class Client(_Base):
    """A blocking client of a wenda server.

    `url` defaults to `$WENDA_URL`, else `http://127.0.0.1:8080`; `api_key` to `$WENDA_API_KEY`.
    A 503 (loading, overloaded, storage away: nothing was done) or a refused connection is
    tried again up to `max_retries` times, waiting `backoff` seconds doubled each time (at least
    what the server's `Retry-After` asks). Errors are raised as `wenda.APIError` with the
    server's `code`, or `wenda.TransportError` when no answer came within `timeout` seconds.
    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key, timeout, max_retries, backoff)
        self._http = httpx.Client(transport=transport, **self._http_options)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call[T], *, retry: bool = True) -> T:
        for attempt in itertools.count():
            delay: float | None
            try:
                response = self._http.send(call.request(self._http))
            except httpx.HTTPError as error:
                delay = self._wait_after(error, attempt, retry)
            else:
                delay = self._wait_before_resending(response, attempt, retry)
                if delay is None:
                    return call.read(response)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _open(self, call: Call[Any]) -> httpx.Response:
        """Sends `call` for a streamed answer: the response, successful and its body unread,
        after the retries `_send` makes; an error answered before the stream is raised."""
        for attempt in itertools.count():
            delay: float | None
            try:
                response = self._http.send(call.request(self._http), stream=True)
                if response.is_success:
                    return response
                try:
                    response.read()
                finally:
                    response.close()
            except httpx.HTTPError as error:
                delay = self._wait_after(error, attempt, retry=True)
            else:
                delay = self._wait_before_resending(response, attempt, retry=True)
                if delay is None:
                    raise calls.api_error(response)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def health(self) -> t.Status:
        """`GET /health`: answers while the process runs."""
        return self._send(calls.health())

    def ready(self) -> bool:
        """Whether the server answers searches and writes now (asked once, not retried)."""
        try:
            self._send(calls.ready(), retry=False)
        except APIError as error:
            if error.status == 503:
                return False
            raise
        return True

    def wait_until_ready(self, timeout: float = 120.0, interval: float = 0.25) -> None:
        """Waits for `ready()`, raising `WendaError` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self._ready_or_down():
            if time.monotonic() > deadline:
                raise WendaError(f"{self.url} was not ready within {timeout} s")
            time.sleep(interval)

    def _ready_or_down(self) -> bool:
        try:
            return self.ready()
        except TransportError:
            return False

    def info(self) -> t.Info:
        """What is served: version, model, sizes, CPU kernels."""
        return self._send(calls.info())

    def search(
        self,
        query: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        **options: Unpack[t.SearchOptions],
    ) -> t.SearchResponse:
        """The passages that best answer `query`, best first, with citations."""
        return self._send(calls.search(collection, query, options))

    def answer(
        self,
        question: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        **options: Unpack[t.AnswerOptions],
    ) -> t.Answer:
        """The sentences of the documents that answer `question`, quoted and cited (`[n]` in
        `answer` is the citation whose `index` is n), drawn from a hybrid search of `top_k`
        passages; when the documents do not answer it, `found` is false and `answer` is the
        server's refusal text."""
        return self._send(calls.answer(collection, question, options))

    def answer_stream(
        self,
        question: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        **options: Unpack[t.AnswerOptions],
    ) -> Generator[t.AnswerEvent, None, None]:
        """The answer `answer` gives, as it is written: `AnswerSources` (the passages its
        `[n]` markers may refer to), then `AnswerDelta`s of its text, then the `Answer`
        itself, the last event. The request is sent when iteration starts; an error before
        the stream starts is raised as `answer` raises it, one that ends the stream (the LLM
        failed mid-answer) as `APIError` with its code (`upstream_unavailable`, ...), and a
        stream that breaks off as `TransportError`. Leaving the loop early (or closing the
        iterator) closes the connection, and the server stops answering."""
        call = calls.answer_stream(collection, question, options)
        response = self._open(call)
        try:
            stream = calls.AnswerStream(call, response)
            for chunk in response.iter_bytes():
                yield from stream.feed(chunk)
                if stream.done:
                    return
        except httpx.HTTPError as error:
            raise self._broke_off(error) from error
        finally:
            response.close()
        stream.ended(self.url)

    def passage(self, passage_id: str, *, collection: str = DEFAULT_COLLECTION) -> t.Passage:
        """One passage by its id."""
        return self._send(calls.passage(collection, passage_id))

    def similar(
        self,
        passage_id: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        **options: Unpack[t.SimilarOptions],
    ) -> t.SimilarResponse:
        """The passages closest in meaning to one passage, itself excluded."""
        return self._send(calls.similar(collection, passage_id, options))

    def collections(self) -> list[t.Collection]:
        """Every collection."""
        return self._send(calls.collections()).collections

    def collection(self, name: str) -> t.Collection:
        return self._send(calls.collection(name))

    def create_collection(self, name: str) -> t.Collection:
        """Creates the collection, or returns it when it exists."""
        return self._send(calls.create_collection(name))

    def delete_collection(self, name: str) -> t.Deleted:
        """Deletes the collection with everything in it."""
        return self._send(calls.delete_collection(name))

    def documents(
        self, collection: str, *, limit: int | None = None, cursor: str | None = None
    ) -> t.DocumentList:
        """One page of a collection's documents (without texts), by id."""
        return self._send(calls.documents(collection, limit, cursor))

    def iter_documents(
        self, collection: str, *, page_size: int = 100
    ) -> Iterator[t.DocumentSummary]:
        """Every document of a collection, fetching a page at a time."""
        cursor: str | None = None
        while True:
            page = self.documents(collection, limit=page_size, cursor=cursor)
            yield from page.documents
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def document(self, collection: str, doc_id: str) -> t.Document:
        """A document with its text and passages."""
        return self._send(calls.document(collection, doc_id))

    def put_document(
        self, collection: str, doc_id: str, text: str, **fields: Unpack[t.DocumentFields]
    ) -> t.PutDocumentResponse:
        """Creates or replaces a document; it is stored and searchable when this returns."""
        return self._send(calls.put_document(collection, doc_id, text, fields))

    def delete_document(self, collection: str, doc_id: str) -> t.Deleted:
        return self._send(calls.delete_document(collection, doc_id))

    def import_documents(self, collection: str, documents: Iterable[t.NewDocument]) -> t.Job:
        """Starts an import job of many documents; follow it with `wait_for_job`."""
        return self._send(calls.import_documents(collection, documents))

    def import_files(self, collection: str, paths: Iterable[str | Path]) -> t.Job:
        """Starts an import job of `.jsonl`, `.txt` (news) and `.md` files."""
        return self._send(calls.import_files(collection, paths))

    def job(self, job_id: str) -> t.Job:
        return self._send(calls.job(job_id))

    def wait_for_job(
        self, job_id: str, *, timeout: float | None = None, interval: float = 0.25
    ) -> t.Job:
        """Polls a job until it is `completed` or `failed`; `WendaError` after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (job := self.job(job_id)).finished:
            if deadline is not None and time.monotonic() > deadline:
                raise WendaError(f"job {job_id} still {job.status} after {timeout} s")
            time.sleep(interval)
        return job

    def embed(
        self, texts: str | list[str], *, input_type: t.InputType = "passage"
    ) -> t.EmbeddingsResponse:
        """Vectors of the served model; `input_type="query"` for questions."""
        return self._send(calls.embed(texts, input_type))


class AsyncClient(_Base):
    """The asynchronous twin of `Client`: the same methods, awaited."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key, timeout, max_retries, backoff)
        self._http = httpx.AsyncClient(transport=transport, **self._http_options)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call[T], *, retry: bool = True) -> T:
        for attempt in itertools.count():
            delay: float | None
            try:
                response = await self._http.send(call.request(self._http))
            except httpx.HTTPError as error:
                delay = self._wait_after(error, attempt, retry)
            else:
                delay = self._wait_before_resending(response, attempt, retry)
                if delay is None:
                    return call.read(response)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _open(self, call: Call[Any]) -> httpx.Response:
        for attempt in itertools.count():
            delay: float | None
            try:
                response = await self._http.send(call.request(self._http), stream=True)
                if response.is_success:
                    return response
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            except httpx.HTTPError as error:
                delay = self._wait_after(error, attempt, retry=True)
            else:
                delay = self._wait_before_resending(response, attempt, retry=True)
                if delay is None:
                    raise calls.api_error(response)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def health(self) -> t.Status:
        return await self._send(calls.health())

    async def ready(self) -> bool:
        try:
            await self._send(calls.ready(), retry=False)
        except APIError as error:
            if error.status == 503:
                return False
            raise
        return True

    async def wait_until_ready(
        self,
        timeout: float = 120.0,  # noqa: ASYNC109 (the same arguments as the sync client's)
        interval: float = 0.25,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not await self._ready_or_down():
            if time.monotonic() > deadline:
                raise WendaError(f"{self.url} was not ready within {timeout} s")
            await asyncio.sleep(interval)

    async def _ready_or_down(self) -> bool:
        try:
            return await self.ready()
        except TransportError:
            return False

    async def info(self) -> t.Info:
        return await self._send(calls.info())

    async def search(
        self,
        query: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        **options: Unpack[t.SearchOptions],
    ) -> t.SearchResponse:
        return await self._send(calls.search(collection, query, options))

    async def answer(
        self,
        question: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        **options: Unpack[t.AnswerOptions],
    ) -> t.Answer:
        return await self._send(calls.answer(collection, question, options))

    async def answer_stream(
        self,
        question: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        **options: Unpack[t.AnswerOptions],
    ) -> AsyncGenerator[t.AnswerEvent, None]:
        """`Client.answer_stream`, as an asynchronous iterator (`async for`). To leave it
        early and close the connection at once, wrap it in `contextlib.aclosing`."""
        call = calls.answer_stream(collection, question, options)
        response = await self._open(call)
        try:
            stream = calls.AnswerStream(call, response)
            async for chunk in response.aiter_bytes():
                for event in stream.feed(chunk):
                    yield event
                if stream.done:
                    return
        except httpx.HTTPError as error:
            raise self._broke_off(error) from error
        finally:
            await response.aclose()
        stream.ended(self.url)

    async def passage(self, passage_id: str, *, collection: str = DEFAULT_COLLECTION) -> t.Passage:
        return await self._send(calls.passage(collection, passage_id))

    async def similar(
        self,
        passage_id: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        **options: Unpack[t.SimilarOptions],
    ) -> t.SimilarResponse:
        return await self._send(calls.similar(collection, passage_id, options))

    async def collections(self) -> list[t.Collection]:
        return (await self._send(calls.collections())).collections

    async def collection(self, name: str) -> t.Collection:
        return await self._send(calls.collection(name))

    async def create_collection(self, name: str) -> t.Collection:
        return await self._send(calls.create_collection(name))

    async def delete_collection(self, name: str) -> t.Deleted:
        return await self._send(calls.delete_collection(name))

    async def documents(
        self, collection: str, *, limit: int | None = None, cursor: str | None = None
    ) -> t.DocumentList:
        return await self._send(calls.documents(collection, limit, cursor))

    async def iter_documents(
        self, collection: str, *, page_size: int = 100
    ) -> AsyncIterator[t.DocumentSummary]:
        cursor: str | None = None
        while True:
            page = await self.documents(collection, limit=page_size, cursor=cursor)
            for summary in page.documents:
                yield summary
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def document(self, collection: str, doc_id: str) -> t.Document:
        return await self._send(calls.document(collection, doc_id))

    async def put_document(
        self, collection: str, doc_id: str, text: str, **fields: Unpack[t.DocumentFields]
    ) -> t.PutDocumentResponse:
        return await self._send(calls.put_document(collection, doc_id, text, fields))

    async def delete_document(self, collection: str, doc_id: str) -> t.Deleted:
        return await self._send(calls.delete_document(collection, doc_id))

    async def import_documents(self, collection: str, documents: Iterable[t.NewDocument]) -> t.Job:
        return await self._send(calls.import_documents(collection, documents))

    async def import_files(self, collection: str, paths: Iterable[str | Path]) -> t.Job:
        return await self._send(calls.import_files(collection, paths))

    async def job(self, job_id: str) -> t.Job:
        return await self._send(calls.job(job_id))

    async def wait_for_job(
        self,
        job_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (the same arguments as the sync client's)
        interval: float = 0.25,
    ) -> t.Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (job := await self.job(job_id)).finished:
            if deadline is not None and time.monotonic() > deadline:
                raise WendaError(f"job {job_id} still {job.status} after {timeout} s")
            await asyncio.sleep(interval)
        return job

    async def embed(
        self, texts: str | list[str], *, input_type: t.InputType = "passage"
    ) -> t.EmbeddingsResponse:
        return await self._send(calls.embed(texts, input_type))


class Clients:
    """A `Client` and an `AsyncClient` made on first use, for the framework retrievers, which
    may be called either way. An `AsyncClient`'s connections belong to the event loop that
    opened them, so a call from another loop (a second `asyncio.run`) gets a client of its own.
    """

    def __init__(self, url: str | None, api_key: str | None, timeout: float) -> None:
        self._url, self._api_key, self._timeout = url, api_key, timeout
        self._sync: Client | None = None
        self._async: tuple[asyncio.AbstractEventLoop, AsyncClient] | None = None

    def sync(self) -> Client:
        if self._sync is None:
            self._sync = Client(self._url, api_key=self._api_key, timeout=self._timeout)
        return self._sync

    def asynchronous(self) -> AsyncClient:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            client = AsyncClient(self._url, api_key=self._api_key, timeout=self._timeout)
            self._async = (loop, client)
        return self._async[1]
