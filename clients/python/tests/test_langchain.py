"""`wenda.langchain.WendaRetriever` with the real langchain-core, and the tested settings for
LangChain's `OpenAIEmbeddings` and `ChatOpenAI` against wenda's OpenAI-compatible routes."""

from __future__ import annotations

import math
from typing import Any

import openai
import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import ValidationError

from wenda import APIError, Client
from wenda.langchain import WendaRetriever

from .conftest import SEED_FILE, Server

QUESTION = "模速空间在哪个区？"


def test_documents_carry_text_and_citation(server: Server) -> None:
    retriever = WendaRetriever(url=server.url, top_k=3)
    documents = retriever.invoke(QUESTION)
    assert len(documents) == 3
    first = documents[0]
    assert first.id == f"{SEED_FILE}~3.2"
    assert "徐汇区" in first.page_content
    metadata = first.metadata
    assert metadata["id"] == first.id
    assert metadata["title"] == "习近平在上海考察时强调 加快建成具有全球影响力的科技创新高地"
    assert metadata["date"] == "2025-04-29"
    assert metadata["source"] == "新华网"
    assert "url" in metadata
    assert metadata["document"] == SEED_FILE
    assert metadata["citation"]["path"] == SEED_FILE
    assert metadata["citation"]["line_start"] <= metadata["citation"]["line_end"]
    scores = [d.metadata["score"] for d in documents]
    assert scores == sorted(scores, reverse=True)
    assert metadata["scores"]["dense"] is not None


def test_matches_the_client(server: Server, client: Client) -> None:
    retriever = WendaRetriever(url=server.url, top_k=4, mode="dense")
    expected = client.search(QUESTION, top_k=4, mode="dense").results
    got = retriever.invoke(QUESTION)
    assert [d.id for d in got] == [r.id for r in expected]
    assert [d.metadata["score"] for d in got] == pytest.approx([r.score for r in expected])


@pytest.mark.anyio
async def test_async_equals_sync(server: Server) -> None:
    retriever = WendaRetriever(url=server.url, top_k=5)
    for question in (QUESTION, "Which professor gave the lecture on artificial intelligence?"):
        synced = retriever.invoke(question)
        awaited = await retriever.ainvoke(question)
        assert [d.id for d in awaited] == [d.id for d in synced]
        for a, b in zip(awaited, synced, strict=True):
            assert a.page_content == b.page_content
            assert math.isclose(a.metadata["score"], b.metadata["score"], abs_tol=1e-5)


def test_filter_and_collection_are_honoured(server: Server, notes: str) -> None:
    retriever = WendaRetriever(
        url=server.url, collection=notes, filter={"metadata": {"lang": "zh"}}, top_k=5
    )
    documents = retriever.invoke("Where is the large-model incubator?")
    assert [d.metadata["document"] for d in documents] == ["modu", "garden"]
    assert all(d.metadata["document_metadata"]["lang"] == "zh" for d in documents)
    dated = WendaRetriever(url=server.url, collection=notes, filter={"date_from": "2025-05-01"})
    assert [d.metadata["document"] for d in dated.invoke("incubator")] == ["incubator-en"]


def test_composes_in_a_chain(server: Server) -> None:
    def cite(documents: list[Document]) -> str:
        return "\n".join(
            f"[{n}] {d.metadata['title']} ({d.metadata['citation']['line_start']}): "
            f"{d.page_content}"
            for n, d in enumerate(documents, 1)
        )

    chain = WendaRetriever(url=server.url, top_k=2) | RunnableLambda(cite)
    answers = chain.batch([QUESTION, "中央政治局集体学习时对人工智能发展提出了什么要求？"])
    assert answers[0].startswith("[1] 习近平在上海考察时强调")
    assert "徐汇区" in answers[0].split("\n")[0]
    assert answers[1].count("\n") == 1


def test_errors_keep_their_codes(server: Server) -> None:
    with pytest.raises(APIError) as raised:
        WendaRetriever(url=server.url, collection="nope").invoke(QUESTION)
    assert raised.value.code == "unknown_collection"
    with pytest.raises(APIError) as empty:
        WendaRetriever(url=server.url).invoke("   ")
    assert empty.value.code == "empty_query"


def test_base_url_is_another_name_for_url(server: Server) -> None:
    # The name OpenAI's clients use; it was once ignored, and the server asked was the default.
    retriever = WendaRetriever(base_url=server.url, top_k=1)
    assert retriever.url == server.url
    assert retriever.invoke(QUESTION)[0].id == f"{SEED_FILE}~3.2"
    with pytest.raises(ValidationError, match="url or as base_url, not both"):
        WendaRetriever(url=server.url, base_url=server.url)


@pytest.mark.parametrize("argument", ["server_url", "topk", "k", "search_kwargs"])
def test_unknown_arguments_are_refused(argument: str) -> None:
    arguments: dict[str, Any] = {argument: 3}
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        WendaRetriever(**arguments)


def test_openai_embeddings_settings(server: Server, client: Client) -> None:
    # The settings the README gives: texts, not tiktoken ids.
    embeddings = OpenAIEmbeddings(
        base_url=f"{server.url}/v1",
        api_key="unused",  # type: ignore[arg-type]
        model="intfloat/multilingual-e5-small",
        check_embedding_ctx_length=False,
    )
    texts = ["模速空间位于徐汇区。", "番茄需要阳光。"]
    vectors = embeddings.embed_documents(texts)
    expected = client.embed(texts).vectors
    for got, want in zip(vectors, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    # A framework's questions are embedded with the passage prompt: it cannot say otherwise.
    assert embeddings.embed_query(texts[0]) == pytest.approx(expected[0], abs=1e-6)


def test_token_ids_are_refused_with_the_fix_named(server: Server) -> None:
    # What LangChain's OpenAIEmbeddings sends by default (tiktoken ids, several arrays).
    openai_client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        openai_client.embeddings.create(
            model="intfloat/multilingual-e5-small", input=[[8675, 4513], [1116, 30]]
        )
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["code"] == "token_ids_not_supported"
    assert "check_embedding_ctx_length=False" in body["message"]


def test_chat_openai_answers_at_the_end_of_a_chain(server: Server, client: Client) -> None:
    # The settings the README gives: wenda as the chain's chat model, answering with citations.
    wenda = ChatOpenAI(
        base_url=f"{server.url}/v1",
        api_key="unused",  # type: ignore[arg-type]
        model="wenda",
        max_retries=0,
    )
    prompt = ChatPromptTemplate.from_messages(
        [("placeholder", "{history}"), ("human", "{question}")]
    )
    chain = prompt | wenda | StrOutputParser()
    question = "模速空间位于上海哪个区？"
    expected = client.answer(question).answer
    assert "[1]" in expected
    assert chain.invoke({"question": question, "history": []}) == expected
    # The history is the conversation a follow-up is understood in.
    history = [HumanMessage("模速空间是什么？"), AIMessage("上海的大模型孵化平台。")]
    assert "徐汇区" in chain.invoke({"question": "在哪个区？", "history": history})
    # Streamed, the pieces are the same answer.
    assert "".join(chain.stream({"question": question, "history": []})) == expected
