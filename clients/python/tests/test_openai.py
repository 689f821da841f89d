"""OpenAI's own Python client (`openai`) against wenda's `/v1/chat/completions` and
`/v1/models`: the model is a collection (`wenda` for `default`), the reply wenda's answer with its
`[n]` markers, its citations as `url_citation` annotations and in the extra `citations` field.
Extractive here (the seed server has no LLM); generative in test_generative.py."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

from wenda import Client

from .conftest import SEED_FILE, Server
from .test_client import ANSWERED, REFUSAL, UNANSWERED

QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": ANSWERED}]


def connect(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def citations_of(reply: ChatCompletion | ChatCompletionChunk) -> list[dict[str, Any]]:
    """wenda's `citations`, a field OpenAI's types do not have: pydantic keeps it as an extra."""
    assert reply.model_extra is not None
    citations: list[dict[str, Any]] = reply.model_extra["citations"]
    return citations


def check_annotations(completion: ChatCompletion) -> None:
    """Each `url_citation` sits on a `[n]` marker of the content and links to what it cites."""
    message = completion.choices[0].message
    assert message.content is not None
    by_index = {c["index"]: c for c in citations_of(completion)}
    assert message.annotations is not None
    for annotation in message.annotations:
        assert annotation.type == "url_citation"
        cited = annotation.url_citation
        marker = message.content[cited.start_index : cited.end_index]
        citation = by_index[int(marker.strip("[]"))]
        assert cited.title == citation["document"]["title"]
        # A document without a url of its own is linked to the passage on this server.
        assert httpx.get(cited.url).json()["id"] == citation["id"]


def test_chat_completion_is_the_cited_answer(server: Server, client: Client) -> None:
    completion = connect(server).chat.completions.create(model="wenda", messages=QUESTION)
    choice = completion.choices[0]
    assert (completion.object, completion.model, choice.finish_reason) == (
        "chat.completion",
        "wenda",
        "stop",
    )
    assert choice.message.role == "assistant"
    content = choice.message.content
    assert content
    assert "[1]" in content
    assert "徐汇区" in content
    expected = client.answer(ANSWERED)
    assert content == expected.answer
    citations = citations_of(completion)
    assert [(c["index"], c["id"], c["quote"]) for c in citations] == [
        (c.index, c.id, c.quote) for c in expected.citations
    ]
    assert citations[0]["citation"]["path"] == SEED_FILE
    assert choice.message.annotations
    check_annotations(completion)
    # An extractive answer asks no LLM: no tokens.
    assert completion.usage is not None
    assert completion.usage.total_tokens == 0


def test_streamed_chat_completion(server: Server, client: Client) -> None:
    stream = connect(server).chat.completions.create(
        model="wenda", messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == client.answer(ANSWERED).answer
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason is not None]
    assert [c.choices[0].finish_reason for c in finished] == ["stop"]
    assert citations_of(finished[0])[0]["citation"]["path"] == SEED_FILE
    # Asked for, the usage comes last, in a chunk of its own.
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert len({c.id for c in chunks}) == 1
    # Not asked for, it does not come.
    plain = connect(server).chat.completions.create(model="wenda", messages=QUESTION, stream=True)
    assert all(c.usage is None for c in plain)


def test_a_follow_up_is_understood_in_the_conversation(server: Server) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Answer briefly."},  # wenda's instructions apply
        {"role": "user", "content": "模速空间是什么？"},
        {"role": "assistant", "content": "上海市打造的人工智能大模型专业孵化和加速平台。"},
        {"role": "user", "content": "在哪个区？"},
    ]
    completion = connect(server).chat.completions.create(model="wenda", messages=messages)
    assert "徐汇区" in (completion.choices[0].message.content or "")


def test_models_are_the_collections(server: Server, notes: str) -> None:
    wenda = connect(server)
    models = [model.id for model in wenda.models.list()]
    assert "wenda" in models
    assert notes in models
    assert "default" not in models, "the default collection is `wenda`"
    completion = wenda.chat.completions.create(model=notes, messages=QUESTION)
    assert completion.model == notes
    assert {c["document"]["path"] for c in citations_of(completion)} == {"modu"}


def test_unanswered_is_refused_in_the_content(server: Server) -> None:
    completion = connect(server).chat.completions.create(
        model="wenda", messages=[{"role": "user", "content": UNANSWERED}]
    )
    assert completion.choices[0].message.content == REFUSAL
    assert citations_of(completion) == []
    assert completion.choices[0].message.annotations == []


def test_errors_are_openais_exceptions(server: Server) -> None:
    wenda = connect(server)
    with pytest.raises(openai.NotFoundError) as missing:
        wenda.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert isinstance(missing.value.body, dict)
    assert missing.value.body["code"] == "unknown_collection"
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        wenda.chat.completions.create(
            model="wenda", messages=[*QUESTION, {"role": "assistant", "content": "x"}]
        )
    assert isinstance(invalid.value.body, dict)
    assert "messages[1].role" in invalid.value.body["message"]


@pytest.mark.anyio
async def test_async_client(server: Server, client: Client) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key="unused", max_retries=0
    ) as wenda:
        completion = await wenda.chat.completions.create(model="wenda", messages=QUESTION)
        expected = client.answer(ANSWERED).answer
        assert completion.choices[0].message.content == expected
        stream = await wenda.chat.completions.create(
            model="wenda", messages=QUESTION, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
        assert chunks[-1].usage is not None
        assert "wenda" in [model.id async for model in wenda.models.list()]
