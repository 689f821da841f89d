"""Generative answers, through a real LLM: a wenda server started with `--llm-base-url` naming
the test LLM server (`WENDA_TEST_LLM_URL`, which `./scripts/test.sh` sets; without it these tests
fail). The model is tiny and its answers poor, and it answers one request at a time: these few
tests check the protocol (a completion that ends, with its usage and citations), not the
answers' quality."""

from __future__ import annotations

import openai

from wenda import Client
from wenda.types import Answer, AnswerDelta, AnswerSources

from .conftest import Server
from .test_client import ANSWERED, REFUSAL

TIMEOUT = 300.0


def connect(server: Server) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=TIMEOUT
    )


def test_chat_completion(llm_server: Server) -> None:
    completion = connect(llm_server).chat.completions.create(
        model="wenda", messages=[{"role": "user", "content": ANSWERED}]
    )
    choice = completion.choices[0]
    # The tiny model often runs into the server's 48-token limit, which OpenAI calls "length".
    assert choice.finish_reason in ("stop", "length")
    assert choice.message.content
    assert completion.model_extra is not None
    citations = completion.model_extra["citations"]
    assert isinstance(citations, list)
    if choice.message.content != REFUSAL:
        usage = completion.usage
        assert usage is not None
        assert usage.prompt_tokens > 0
        assert usage.completion_tokens > 0
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        # Markers naming no source are dropped: each one left is a citation.
        indices = {c["index"] for c in citations}
        for annotation in choice.message.annotations or []:
            cited = annotation.url_citation
            marker = choice.message.content[cited.start_index : cited.end_index]
            assert int(marker.strip("[]")) in indices


def test_streamed_chat_completion(llm_server: Server) -> None:
    stream = connect(llm_server).chat.completions.create(
        model="wenda",
        messages=[{"role": "user", "content": ANSWERED}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content.strip()
    finished = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finished[-1] in ("stop", "length")
    assert [f for f in finished if f is not None] == finished[-1:]
    assert chunks[-1].usage is not None


def test_streamed_generative_answer(llm_server: Server) -> None:
    with Client(llm_server.url, timeout=TIMEOUT) as client:
        events = list(client.answer_stream(ANSWERED, mode="generative", top_k=3))
    first, *deltas, last = events
    assert isinstance(first, AnswerSources)
    assert len(first.sources) == 3
    assert all(isinstance(delta, AnswerDelta) for delta in deltas)
    assert isinstance(last, Answer)
    assert last.mode == "generative"
    assert last.answer
    announced = {source.index: source.id for source in first.sources}
    for citation in last.citations:
        assert announced[citation.index] == citation.id
    if last.found:
        streamed = "".join(d.text for d in deltas if isinstance(d, AnswerDelta))
        assert streamed.strip(), "the text came as it was written"
    else:
        assert last.answer == REFUSAL
