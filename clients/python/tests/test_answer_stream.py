"""Streamed answers (`answer_stream`) and follow-up questions (`conversation`): against the real
server, and, for what it cannot be made to do on demand (an LLM failing mid-answer, a stream cut
off), against a scripted one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from wenda import APIError, AsyncClient, Client, TransportError, WendaError
from wenda._sse import ServerSentEvent, SSEDecoder
from wenda.types import Answer, AnswerDelta, AnswerEvent, AnswerSources, Turn

from .conftest import SEED_FILE, Server
from .test_client import ANSWERED, REFUSAL, UNANSWERED, check_quotes


async def drain(events: AsyncIterator[AnswerEvent], into: list[AnswerEvent]) -> None:
    async for event in events:
        into.append(event)


def split(events: list[AnswerEvent]) -> tuple[AnswerSources, list[AnswerDelta], Answer]:
    """The events of one answer, checked to come in their order: sources, deltas, answer."""
    first, *deltas, last = events
    assert isinstance(first, AnswerSources)
    assert deltas, "at least one piece of text"
    assert all(isinstance(delta, AnswerDelta) for delta in deltas)
    assert isinstance(last, Answer)
    return first, [d for d in deltas if isinstance(d, AnswerDelta)], last


def test_streamed_answer_comes_in_order(client: Client) -> None:
    sources, deltas, answer = split(list(client.answer_stream(ANSWERED)))
    assert "".join(delta.text for delta in deltas) == answer.answer
    assert (answer.question, answer.mode, answer.found) == (ANSWERED, "extractive", True)
    assert "徐汇区" in answer.answer
    check_quotes(answer)
    # Each [n] of the answer is the source announced as n, before any text came.
    announced = {source.index: source for source in sources.sources}
    for citation in answer.citations:
        source = announced[citation.index]
        assert (source.id, source.document, source.citation) == (
            citation.id,
            citation.document,
            citation.citation,
        )
    assert sources.sources[0].document.path == SEED_FILE
    # The same answer as unstreamed.
    unstreamed = client.answer(ANSWERED)
    assert (answer.answer, answer.citations) == (unstreamed.answer, unstreamed.citations)
    assert [(s.text, s.citations) for s in answer.sentences] == [
        (s.text, s.citations) for s in unstreamed.sentences
    ]
    # (The same f32 scores, printed with more digits in the event than in the JSON answer.)
    assert [s.score for s in answer.sentences] == pytest.approx(
        [s.score for s in unstreamed.sentences], abs=1e-6
    )
    assert [p.id for p in answer.passages] == [p.id for p in unstreamed.passages]
    assert answer.passages[0].metadata == unstreamed.passages[0].metadata
    assert (answer.usage, answer.standalone_question) == (None, None)


def test_streamed_answer_takes_the_options(client: Client, notes: str) -> None:
    events = list(client.answer_stream(ANSWERED, collection=notes, top_k=2, max_sentences=1))
    _, _, answer = split(events)
    assert len(answer.passages) == 2
    assert len(answer.sentences) == 1
    assert answer.citations[0].document.path == "modu"


def test_streamed_refusal(client: Client) -> None:
    _, deltas, answer = split(list(client.answer_stream(UNANSWERED)))
    assert answer.found is False
    assert "".join(delta.text for delta in deltas) == answer.answer == REFUSAL


@pytest.mark.parametrize(
    ("options", "status", "code"),
    [
        ({"question": " \u3000 "}, 400, "empty_question"),
        ({"question": "q", "mode": "generative"}, 400, "no_llm_configured"),
        ({"question": "q", "collection": "nope"}, 404, "unknown_collection"),
        ({"question": "q", "max_sentences": 11}, 422, "invalid_request"),
        ({"question": "q", "conversation": [{"role": "system", "content": "x"}]}, 422, None),
    ],
)
def test_errors_before_the_stream_are_raised_as_answer_raises_them(
    client: Client, options: dict[str, Any], status: int, code: str | None
) -> None:
    events = client.answer_stream(**options)
    with pytest.raises(APIError) as raised:
        next(events)
    assert raised.value.status == status
    assert raised.value.code == (code or "invalid_request")
    assert raised.value.request_id


def test_leaving_early_closes_the_stream(client: Client) -> None:
    events = client.answer_stream(ANSWERED)
    assert isinstance(next(events), AnswerSources)
    events.close()
    # The client goes on working (its connection was given back, not left half read).
    assert client.answer(ANSWERED, top_k=1).found


@pytest.mark.anyio
async def test_async_stream_equals_sync(server: Server, client: Client) -> None:
    async with AsyncClient(server.url) as async_client:
        for question in (ANSWERED, UNANSWERED):
            got = [event async for event in async_client.answer_stream(question, top_k=3)]
            expected = list(client.answer_stream(question, top_k=3))
            assert [type(e) for e in got] == [type(e) for e in expected]
            sources, deltas, answer = split(got)
            assert sources == split(expected)[0]
            assert "".join(d.text for d in deltas) == answer.answer == split(expected)[2].answer
        with pytest.raises(APIError) as raised:
            await drain(async_client.answer_stream(ANSWERED, mode="generative"), [])
        assert raised.value.code == "no_llm_configured"


FOLLOW_UP = "在哪个区？"
CONVERSATION: list[Turn] = [{"role": "user", "content": "模速空间是什么？"}]


def test_follow_up_is_understood_in_its_conversation(client: Client) -> None:
    # Without an LLM, a short follow-up is searched together with the previous question.
    answer = client.answer(FOLLOW_UP, conversation=CONVERSATION)
    assert answer.question == FOLLOW_UP
    assert answer.standalone_question is not None
    assert "模速空间" in answer.standalone_question
    assert answer.found
    assert "徐汇区" in answer.answer
    check_quotes(answer)
    assert answer.usage is None, "no LLM, no tokens"
    # With the assistant's reply between them too, and streamed.
    conversation: list[Turn] = [
        *CONVERSATION,
        {"role": "assistant", "content": "上海市打造的人工智能大模型专业孵化和加速平台。[1]"},
    ]
    _, deltas, streamed = split(list(client.answer_stream(FOLLOW_UP, conversation=conversation)))
    assert streamed.standalone_question is not None
    assert "徐汇区" in "".join(d.text for d in deltas) == streamed.answer
    # Alone, the follow-up is searched as it is.
    assert client.answer(FOLLOW_UP).standalone_question is None


# A scripted server, for what the real one does not do on demand.

SOURCES = {
    "sources": [
        {
            "index": 1,
            "id": "a~1.1",
            "document": {"path": "a", "title": "A"},
            "citation": {
                "path": "a",
                "line_start": 1,
                "line_end": 2,
                "byte_start": 0,
                "byte_end": 9,
            },
        }
    ]
}
DONE = {
    "question": "q",
    "mode": "generative",
    "found": True,
    "answer": "第一句。[1]\n第二句。",
    "sentences": [],
    "citations": [],
    "passages": [],
    "took_ms": 3,
    "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
    "finish_reason": "length",
    "a_field_from_a_later_server": True,
}


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def streaming(*chunks: bytes, status: int = 200, kind: str = "text/event-stream") -> Client:
    """A client of a server answering every request with `chunks`, one at a time."""

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept"] == "text/event-stream"
        assert json.loads(request.content)["stream"] is True
        headers = {"content-type": kind, "x-request-id": "req-1"}
        return httpx.Response(status, headers=headers, content=iter(chunks))

    return Client("http://wenda.test", transport=httpx.MockTransport(answer))


def test_deltas_keep_their_text_and_the_answer_comes_last() -> None:
    body = (
        b": keep-alive\n\n"
        + sse("sources", SOURCES)
        + sse("delta", {"text": "第一句。[1]\n"})
        + b": keep-alive\n\n"
        + sse("delta", {"text": "第二句。"})
        + sse("done", DONE)
    )
    # Cut anywhere: inside a line, a UTF-8 character, the blank line ending an event.
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
    with streaming(*chunks) as client:
        sources, deltas, answer = split(list(client.answer_stream("q")))
    assert sources.sources[0].citation.byte_end == 9
    assert [d.text for d in deltas] == ["第一句。[1]\n", "第二句。"]
    assert answer.answer == "".join(d.text for d in deltas)
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (10, 14)
    assert answer.finish_reason == "length"


def test_an_error_event_is_raised_after_what_came_before() -> None:
    failure = {"error": {"code": "upstream_timeout", "message": "the LLM took too long"}}
    body = sse("sources", SOURCES) + sse("delta", {"text": "第一"}) + sse("error", failure)
    seen: list[AnswerEvent] = []
    with streaming(body) as client, pytest.raises(APIError) as raised:
        seen.extend(client.answer_stream("q"))
    assert [type(e) for e in seen] == [AnswerSources, AnswerDelta]
    error = raised.value
    assert (error.status, error.code, error.message) == (
        504,
        "upstream_timeout",
        failure["error"]["message"],
    )
    assert error.request_id == "req-1"


def test_events_it_does_not_know_are_skipped_and_nothing_after_the_answer_is_read() -> None:
    body = (
        sse("sources", SOURCES)
        + sse("progress", {"step": 1})
        + b"data: an unnamed event\n\n"
        + sse("delta", {"text": "第一句。"})
        + sse("done", DONE)
        + b"event: delta\ndata: not json\n\n"
    )
    with streaming(body) as client:
        events = list(client.answer_stream("q"))
    assert [type(e) for e in events] == [AnswerSources, AnswerDelta, Answer]


@pytest.mark.parametrize(
    ("body", "raised", "text"),
    [
        (sse("sources", SOURCES) + sse("delta", {"text": "第一"}), TransportError, "broke off"),
        # The last event without the blank line that ends it is not an event.
        (sse("sources", SOURCES) + sse("done", DONE)[:-1], TransportError, "`done` event"),
        (b"event: delta\ndata: {\n\n", WendaError, "unexpected `delta` event"),
        (sse("delta", {"txt": "x"}), WendaError, "unexpected `delta` event"),
        (sse("error", {"oops": 1}), WendaError, "unexpected `error` event"),
    ],
)
def test_broken_streams_raise_clearly(body: bytes, raised: type[Exception], text: str) -> None:
    with streaming(body) as client, pytest.raises(raised, match=text):
        list(client.answer_stream("q"))


def test_an_answer_that_is_not_a_stream_is_refused() -> None:
    # A server that does not stream (an older one, or a proxy in its place).
    client = streaming(json.dumps(DONE).encode(), kind="application/json")
    with client, pytest.raises(WendaError, match="application/json, not text/event-stream"):
        list(client.answer_stream("q"))


def test_503_before_the_stream_is_retried() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if len(sent) == 1:
            body = {"error": {"code": "overloaded", "message": "busy"}}
            return httpx.Response(503, json=body, headers={"retry-after": "0"})
        body_bytes = sse("sources", SOURCES) + sse("delta", {"text": "x"}) + sse("done", DONE)
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=body_bytes
        )

    transport = httpx.MockTransport(answer)
    with Client("http://wenda.test", backoff=0.001, transport=transport) as client:
        assert isinstance(list(client.answer_stream("q"))[-1], Answer)
    assert len(sent) == 2


@pytest.mark.anyio
async def test_the_async_client_raises_error_events_too() -> None:
    failure = {"error": {"code": "upstream_unavailable", "message": "connection reset"}}

    def answer(_: httpx.Request) -> httpx.Response:
        body = sse("sources", SOURCES) + sse("error", failure)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    transport = httpx.MockTransport(answer)
    async with AsyncClient("http://wenda.test", transport=transport) as client:
        seen: list[AnswerEvent] = []
        with pytest.raises(APIError) as raised:
            await drain(client.answer_stream("q"), seen)
    assert [type(e) for e in seen] == [AnswerSources]
    assert (raised.value.status, raised.value.code) == (502, "upstream_unavailable")


# The event-stream reader itself.


def decode_all(chunks: Iterator[bytes] | list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def bytewise(text: str) -> list[bytes]:
    data = text.encode()
    return [data[i : i + 1] for i in range(len(data))]


def test_sse_lines_end_at_crlf_lf_or_cr_only() -> None:
    # U+2028 and U+0085 end lines for str.splitlines (and httpx's iter_lines), not for SSE.
    text = (
        "\ufeffevent: delta\r\ndata: a\u2028b\x85c\r\n\r\n"
        "data:first\rdata:  second\n\n"
        ": a comment\nid: 7\nretry: 10\nunknown: x\ndata\n\n"
        "event: cut\ndata: never ended\n"
    )
    expected = [
        ServerSentEvent("delta", "a\u2028b\x85c"),
        ServerSentEvent("message", "first\n second"),
        ServerSentEvent("message", "", "7"),
    ]
    assert decode_all([text.encode()]) == expected
    assert decode_all(bytewise(text)) == expected


def test_sse_events_without_data_are_not_dispatched() -> None:
    assert decode_all([b"event: ping\n\n: keep-alive\n\n\n\n"]) == []
    # A CR ending one chunk and a LF starting the next are one line end, not two.
    assert decode_all([b"data: x\r", b"\n\r", b"\n"]) == [ServerSentEvent("message", "x")]
