"""`wenda.llama_index.WendaRetriever` with the real llama-index-core, and the tested settings
for LlamaIndex's `OpenAIEmbedding` and `OpenAILike` against wenda's OpenAI-compatible routes."""

from __future__ import annotations

import math
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage, MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, TextNode
from llama_index.embeddings.openai import OpenAIEmbedding
from llama_index.llms.openai_like import OpenAILike

from wenda import APIError, Client
from wenda.llama_index import WendaRetriever

from .conftest import SEED_FILE, Server

QUESTION = "模速空间在哪个区？"


def test_nodes_carry_text_score_and_citation(server: Server) -> None:
    hits = WendaRetriever(server.url, top_k=3).retrieve(QUESTION)
    assert len(hits) == 3
    first = hits[0]
    assert isinstance(first.node, TextNode)
    assert first.node.node_id == f"{SEED_FILE}~3.2"
    assert "徐汇区" in first.node.text
    metadata = first.node.metadata
    assert first.score == metadata["score"]
    assert metadata["title"] == "习近平在上海考察时强调 加快建成具有全球影响力的科技创新高地"
    assert (metadata["date"], metadata["source"]) == ("2025-04-29", "新华网")
    assert metadata["citation"]["path"] == SEED_FILE
    assert metadata["citation"]["line_start"] > 0
    # What a prompt is built from: the title and date with the text, not ids and offsets.
    prompt = first.node.get_content(metadata_mode=MetadataMode.LLM)
    assert "2025-04-29" in prompt
    assert "徐汇区" in prompt
    assert "line_start" not in prompt
    assert "byte_end" not in prompt


def test_matches_the_client(server: Server, client: Client) -> None:
    expected = client.search(QUESTION, top_k=4, mode="lexical").results
    hits = WendaRetriever(server.url, top_k=4, mode="lexical").retrieve(QUESTION)
    assert [h.node.node_id for h in hits] == [r.id for r in expected]


@pytest.mark.anyio
async def test_async_equals_sync(server: Server) -> None:
    retriever = WendaRetriever(server.url, top_k=5)
    for question in (QUESTION, "Which professor gave the lecture on artificial intelligence?"):
        synced = retriever.retrieve(question)
        awaited = await retriever.aretrieve(question)
        assert [h.node.node_id for h in awaited] == [h.node.node_id for h in synced]
        for a, b in zip(awaited, synced, strict=True):
            assert a.score is not None
            assert b.score is not None
            assert math.isclose(a.score, b.score, abs_tol=1e-5)


def test_filter_and_collection_are_honoured(server: Server, notes: str) -> None:
    retriever = WendaRetriever(
        server.url, collection=notes, filter={"metadata": {"year": {"lt": 2025}}}, top_k=5
    )
    hits = retriever.retrieve("Where is the large-model incubator?")
    assert {h.node.metadata["document"] for h in hits} == {"bread", "garden"}


def test_query_engine_answers_from_the_passages(server: Server) -> None:
    # A mock LLM stands in for a real one: what matters is which passages the engine used.
    engine = RetrieverQueryEngine.from_args(
        WendaRetriever(server.url, top_k=2), llm=MockLLM(max_tokens=4)
    )
    response = engine.query(QUESTION)
    assert [s.node.node_id for s in response.source_nodes] == [
        f"{SEED_FILE}~3.2",
        f"{SEED_FILE}~3.3",
    ]
    assert response.source_nodes[0].node.metadata["citation"]["line_start"] > 0


def test_errors_keep_their_codes(server: Server) -> None:
    with pytest.raises(APIError) as raised:
        WendaRetriever(server.url, collection="nope").retrieve(QUESTION)
    assert raised.value.code == "unknown_collection"


def test_base_url_is_another_name_for_url(server: Server) -> None:
    # The name OpenAI's clients use.
    hits = WendaRetriever(base_url=server.url, top_k=1).retrieve(QUESTION)
    assert hits[0].node.node_id == f"{SEED_FILE}~3.2"
    with pytest.raises(TypeError, match="url or as base_url, not both"):
        WendaRetriever(server.url, base_url=server.url)


@pytest.mark.parametrize("argument", ["server_url", "topk", "similarity_top_k"])
def test_unknown_arguments_are_refused(argument: str) -> None:
    arguments: dict[str, Any] = {argument: 3}
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        WendaRetriever(**arguments)


def test_openai_embedding_settings(server: Server, client: Client) -> None:
    # `model_name=`, not `model=`: the latter only takes OpenAI's own model names.
    embedding = OpenAIEmbedding(
        model_name="intfloat/multilingual-e5-small",
        api_base=f"{server.url}/v1",
        api_key="unused",
    )
    text = "模速空间位于徐汇区。"
    expected = client.embed(text).vectors[0]
    assert embedding.get_text_embedding(text) == pytest.approx(expected, abs=1e-6)
    assert embedding.get_query_embedding(text) == pytest.approx(expected, abs=1e-6)


def test_openai_like_chat_answers_with_citations(server: Server, client: Client) -> None:
    # The settings the README gives.
    wenda = OpenAILike(
        model="wenda",
        api_base=f"{server.url}/v1",
        api_key="unused",
        is_chat_model=True,
        max_retries=0,
    )
    question = "模速空间位于上海哪个区？"
    expected = client.answer(question)
    response = wenda.chat([ChatMessage(role="user", content=question)])
    assert response.message.content == expected.answer
    assert "[1]" in expected.answer
    # `raw` is the openai package's completion, with wenda's citations as an extra field.
    citations = response.raw.model_extra["citations"]
    assert [c["id"] for c in citations] == [c.id for c in expected.citations]
    # And streamed, through the same route.
    pieces = [
        chunk.delta or ""
        for chunk in wenda.stream_chat([ChatMessage(role="user", content=question)])
    ]
    assert "".join(pieces) == expected.answer
