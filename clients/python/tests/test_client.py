"""The client against a real server: searches over the seed corpus, writes, imports, errors."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from wenda import APIError, AsyncClient, Client, TransportError, WendaError
from wenda.types import Answer, NewDocument

from .conftest import NOTES, READ_KEY, ROOT, SEED_FILE, WRITE_KEY, Server

# Questions over seeds/ with the passage that answers them (the README's examples, and
# questions of eval/seeds_crosslingual.jsonl).
KNOWN = [
    ("中央政治局集体学习时对人工智能发展提出了什么要求？", f"{SEED_FILE}~2.1"),
    ("模速空间在哪个区？", f"{SEED_FILE}~3.2"),
    (
        "Which district of Shanghai hosts the large-model incubator that was visited?",
        f"{SEED_FILE}~3.2",
    ),
    (
        "How many companies have moved into the large-model incubator in Shanghai?",
        f"{SEED_FILE}~3.3",
    ),
]


def squeeze(text: str) -> str:
    return re.sub(r"\s", "", text)


@pytest.mark.parametrize(("question", "passage_id"), KNOWN)
def test_known_questions_find_their_passage_first(
    client: Client, question: str, passage_id: str
) -> None:
    answer = client.search(question, top_k=3)
    assert answer.results[0].id == passage_id
    assert answer.mode == "hybrid"
    assert answer.query == question
    assert not answer.truncated
    assert answer.query_tokens is not None
    assert answer.query_tokens > 2
    scores = [result.score for result in answer.results]
    assert scores == sorted(scores, reverse=True)


def test_results_cite_the_lines_they_come_from(client: Client) -> None:
    source = (ROOT / "seeds" / SEED_FILE).read_bytes()
    for result in client.search("模速空间在哪个区？", top_k=5).results:
        citation = result.citation
        assert citation.path == result.document.path == SEED_FILE
        cited = source[citation.byte_start : citation.byte_end].decode()
        # PDF line breaks are the only difference: nothing added or lost.
        assert squeeze(cited) == squeeze(result.text)
        lines = source.decode().split("\n")[citation.line_start - 1 : citation.line_end]
        assert squeeze("".join(lines)) == squeeze(result.text)
        assert result.document.title
        assert re.fullmatch(r"2025-\d\d-\d\d", result.document.date or "")
        assert result.document.source


def test_modes_report_their_scores(client: Client) -> None:
    dense = client.search("模速空间在哪个区？", mode="dense").results[0]
    assert dense.scores.dense == dense.score
    assert dense.scores.lexical is None
    lexical = client.search("模速空间在哪个区？", mode="lexical")
    assert lexical.query_tokens is None
    assert lexical.results[0].scores.dense is None
    hybrid = client.search("模速空间", highlight=True).results[0]
    assert hybrid.highlights, "模速空间 is in the passage"
    start, end = hybrid.highlights[0]
    assert hybrid.text[start:end] == "模速空间"


@pytest.mark.anyio
async def test_async_answers_as_sync_does(server: Server, client: Client) -> None:
    async with AsyncClient(server.url) as async_client:
        for question, _ in KNOWN:
            expected = client.search(question, top_k=5)
            got = await async_client.search(question, top_k=5)
            assert [r.id for r in got.results] == [r.id for r in expected.results]
            for a, b in zip(got.results, expected.results, strict=True):
                assert math.isclose(a.score, b.score, abs_tol=1e-5)
        similar = await async_client.similar(KNOWN[0][1], top_k=3)
        assert [r.id for r in similar.results] == [
            r.id for r in client.similar(KNOWN[0][1], top_k=3).results
        ]
        assert await async_client.ready()
        await async_client.wait_until_ready(timeout=1)
        assert (await async_client.info()) == client.info()


def test_filters_narrow_before_ranking(client: Client, notes: str) -> None:
    question = "Where is the large-model incubator?"
    unfiltered = client.search(question, collection=notes, top_k=2)
    assert {r.id.split("~")[0] for r in unfiltered.results} == {"modu", "incubator-en"}

    english = client.search(question, collection=notes, filter={"metadata": {"lang": "en"}})
    assert [r.document.path for r in english.results] == ["incubator-en", "bread"]
    assert all(r.metadata["lang"] == "en" for r in english.results)

    # A filter matching only an unrelated document still returns it: filters come first.
    food = client.search(question, collection=notes, filter={"metadata": {"tags": "food"}})
    assert [r.document.path for r in food.results] == ["bread"]

    recent = client.search(
        question, collection=notes, filter={"metadata": {"year": {"gte": 2025}}, "title": "上海"}
    )
    assert [r.document.path for r in recent.results] == ["modu"]
    dated = client.search(question, collection=notes, filter={"date_to": "2024-12-31"})
    assert {r.document.path for r in dated.results} == {"bread", "garden"}
    one = client.search(question, collection=notes, filter={"document": "garden"})
    assert [r.document.path for r in one.results] == ["garden"]


def test_context_block_numbers_its_citations(client: Client) -> None:
    answer = client.search("模速空间在哪个区？", top_k=3, context={"max_chars": 300})
    assert answer.context is not None
    assert answer.context.text.startswith("[1] ")
    assert answer.context.citations[0].id == answer.results[0].id
    assert answer.context.citations[0].number == 1
    assert answer.context.omitted + len(answer.context.citations) == 3


ANSWERED = "模速空间位于上海哪个区？"
UNANSWERED = "法国大革命是哪一年爆发的？"
REFUSAL = "知识库中没有找到这个问题的答案。"


def check_quotes(answer: Answer) -> None:
    """Every citation quotes its passage exactly where its span says (in code points)."""
    passages = {p.id: p for p in answer.passages}
    for number, citation in enumerate(answer.citations, 1):
        assert citation.index == number
        assert f"[{number}]" in answer.answer
        passage = passages[citation.id]
        start, end = citation.quote_span
        assert passage.text[start:end] == citation.quote
        assert (citation.document, citation.citation) == (passage.document, passage.citation)
    for sentence in answer.sentences:
        assert sentence.citations
        assert set(sentence.citations) <= {c.index for c in answer.citations}
        assert 0 <= sentence.score <= 1


def test_answers_quote_and_cite_their_passages(client: Client) -> None:
    answer = client.answer(ANSWERED)
    assert (answer.question, answer.mode, answer.found) == (ANSWERED, "extractive", True)
    assert "徐汇区" in answer.answer
    assert answer.citations[0].id == KNOWN[1][1]
    first = answer.citations[0]
    start, end = first.quote_span
    assert first.quote == client.passage(first.id).text[start:end]
    assert "徐汇区" in first.quote
    assert first.citation.path == SEED_FILE
    assert answer.sentences[0].text == first.quote
    assert answer.sentences[0].citations == [first.index]
    check_quotes(answer)
    assert len(answer.passages) == 5
    assert answer.took_ms > 0

    shorter = client.answer(ANSWERED, max_sentences=1, top_k=2, mode="extractive")
    assert len(shorter.sentences) == 1
    assert len(shorter.passages) == 2
    assert shorter.answer == f"{shorter.sentences[0].text}[1]"


def test_unanswered_questions_are_refused(client: Client) -> None:
    answer = client.answer(UNANSWERED)
    assert answer.found is False
    assert answer.answer == REFUSAL
    assert (answer.sentences, answer.citations) == ([], [])
    assert answer.passages, "what was found is still listed"


def test_answers_honour_collection_and_filter(client: Client, notes: str) -> None:
    answer = client.answer(ANSWERED, collection=notes)
    assert answer.found
    assert "徐汇区" in answer.answer
    assert answer.citations[0].document.path == "modu"
    check_quotes(answer)
    # The documents' metadata, sent once per document, is also on each passage.
    assert answer.document_metadata["modu"]["lang"] == "zh"
    assert answer.passages[0].metadata == answer.document_metadata["modu"]

    english = client.answer(ANSWERED, collection=notes, filter={"metadata": {"lang": "en"}})
    assert {p.document.path for p in english.passages} <= {"incubator-en", "bread"}


@pytest.mark.anyio
async def test_async_answers_as_sync_does_too(server: Server, client: Client) -> None:
    async with AsyncClient(server.url) as async_client:
        for question in (ANSWERED, UNANSWERED):
            got = await async_client.answer(question)
            expected = client.answer(question)
            assert (got.found, got.answer) == (expected.found, expected.answer)
            assert got.citations == expected.citations
            assert [p.id for p in got.passages] == [p.id for p in expected.passages]
        check_quotes(await async_client.answer(ANSWERED, top_k=3))
        with pytest.raises(APIError) as raised:
            await async_client.answer(ANSWERED, mode="generative")
        assert (raised.value.status, raised.value.code) == (400, "no_llm_configured")


def test_passages_and_similar(client: Client) -> None:
    passage_id = KNOWN[1][1]
    passage = client.passage(passage_id)
    assert passage.id == passage_id
    assert "徐汇区" in passage.text
    similar = client.similar(passage_id, top_k=3)
    assert similar.id == passage_id
    assert len(similar.results) == 3
    assert passage_id not in [r.id for r in similar.results]
    with pytest.raises(APIError) as missing:
        client.passage("no-such-passage")
    assert (missing.value.status, missing.value.code) == (404, "unknown_passage")
    assert missing.value.request_id


@pytest.mark.parametrize(
    ("call", "status", "code"),
    [
        (lambda c: c.search(" \u200b "), 400, "empty_query"),
        (lambda c: c.search("q", top_k=0), 422, "invalid_request"),
        (lambda c: c.search("q", filter=cast(Any, {"titel": "x"})), 422, "invalid_request"),
        (lambda c: c.search("q", collection="nope"), 404, "unknown_collection"),
        (lambda c: c.answer("q", mode="generative"), 400, "no_llm_configured"),
        (lambda c: c.answer(" \u3000 "), 400, "empty_question"),
        (lambda c: c.answer("q", max_sentences=11), 422, "invalid_request"),
        (lambda c: c.answer("q", collection="nope"), 404, "unknown_collection"),
        (lambda c: c.create_collection("Not A Name"), 422, "invalid_name"),
        (lambda c: c.document("default", "missing"), 404, "unknown_document"),
        (lambda c: c.job("job-missing"), 404, "unknown_job"),
        (lambda c: c.embed(["ok", " "]), 400, "empty_input"),
    ],
)
def test_server_errors_raise_with_their_codes(
    client: Client, call: Any, status: int, code: str
) -> None:
    with pytest.raises(APIError) as raised:
        call(client)
    assert (raised.value.status, raised.value.code) == (status, code)
    assert raised.value.message


def test_documents_lifecycle(client: Client, collection: str) -> None:
    text = "模速空间位于徐汇区。\n\n已入驻企业100余家。"
    written = client.put_document(
        collection, "doc/1", text, title="孵化器", date="2025-04-29", metadata={"n": 1}
    )
    assert (written.id, written.passages) == ("doc/1", 1)
    document = client.document(collection, "doc/1")
    assert document.text == text  # exactly as given: nothing added, nothing lost
    assert document.metadata == {"n": 1}
    assert document.origin == "api"
    assert document.passages[0].text == "模速空间位于徐汇区。已入驻企业100余家。"
    for number in range(2, 6):
        client.put_document(collection, f"doc/{number}", f"第{number}篇。")
    assert client.collection(collection).documents == 5
    first = client.documents(collection, limit=2)
    assert len(first.documents) == 2
    assert first.next_cursor is not None
    assert [d.id for d in client.iter_documents(collection, page_size=2)] == [
        f"doc/{n}" for n in range(1, 6)
    ]

    replaced = client.put_document(collection, "doc/1", "番茄需要阳光。")
    assert replaced.passages == 1
    assert client.search("徐汇区", collection=collection, mode="lexical").results == []
    deleted = client.delete_document(collection, "doc/1")
    assert deleted.deleted
    assert deleted.passages == 1
    assert [c.name for c in client.collections()].count(collection) == 1
    client.delete_collection(collection)
    with pytest.raises(APIError) as gone:
        client.collection(collection)
    assert gone.value.code == "unknown_collection"
    client.create_collection(collection)  # for the fixture to delete


def test_import_reports_refused_lines(client: Client, collection: str) -> None:
    lines = [*NOTES[:2], cast(NewDocument, {"id": "no-text"}), NOTES[2]]
    job = client.import_documents(collection, lines)
    assert job.documents.total == 4
    done = client.wait_for_job(job.id, timeout=120)
    assert done.status == "completed"
    assert (done.documents.done, done.documents.failed) == (3, 1)
    assert [(e.line, e.code) for e in done.errors] == [(3, "invalid_request")]
    assert client.search("sourdough", collection=collection).results[0].document.path == "bread"


def test_import_files(client: Client, collection: str, tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# 孵化器\n\n模速空间位于徐汇区。\n", encoding="utf-8")
    (tmp_path / "more.jsonl").write_text('{"id": "j1", "text": "番茄需要阳光。"}\n')
    job = client.import_files(collection, [tmp_path / "notes.md", tmp_path / "more.jsonl"])
    done = client.wait_for_job(job.id, timeout=120)
    assert (done.status, done.documents.done) == ("completed", 2), done
    assert {d.id for d in client.iter_documents(collection)} == {"notes.md", "j1"}


def test_embeddings_follow_the_input_type(client: Client) -> None:
    dimensions = client.info().model.dimensions
    passages = client.embed(["模速空间位于徐汇区。", "番茄需要阳光。"])
    assert len(passages.vectors) == 2
    assert all(len(v) == dimensions for v in passages.vectors)
    assert math.isclose(sum(x * x for x in passages.vectors[0]), 1.0, rel_tol=1e-4)
    as_query = client.embed("模速空间位于徐汇区。", input_type="query").vectors[0]
    cosine = sum(a * b for a, b in zip(as_query, passages.vectors[0], strict=True))
    assert 0.8 < cosine < 0.9999, "the two prompts give close but different vectors"
    assert passages.usage.prompt_tokens > 0


def test_info_and_readiness(client: Client) -> None:
    info = client.info()
    assert info.model.id == "intfloat/multilingual-e5-small"
    assert info.kernels in ("avx512-vnni", "avx-vnni", "avx2", "portable")
    assert client.ready()
    assert client.health().status == "ok"


def test_keys(keyed_server: Server) -> None:
    with Client(keyed_server.url, api_key="") as anonymous, pytest.raises(APIError) as refused:
        anonymous.collections()
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")
    with Client(keyed_server.url, api_key=WRITE_KEY) as writer:
        assert writer.create_collection("notes").name == "notes"
        writer.put_document("notes", "a", "模速空间位于徐汇区。")
    with Client(keyed_server.url, api_key=READ_KEY) as reader:
        assert [c.name for c in reader.collections()] == ["notes"]
        assert reader.search("徐汇区", collection="notes").results[0].document.path == "a"
        with pytest.raises(APIError) as forbidden:
            reader.put_document("notes", "b", "番茄需要阳光。")
        assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")


def overloaded_then_ok(failures: int) -> tuple[list[httpx.Request], httpx.MockTransport]:
    """A transport answering 503 `overloaded` `failures` times, then wenda's `/health`."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= failures:
            body = {"error": {"code": "overloaded", "message": "busy"}}
            return httpx.Response(503, json=body, headers={"retry-after": "0"})
        return httpx.Response(200, json={"status": "ok"})

    return seen, httpx.MockTransport(answer)


def test_503_is_retried_with_backoff() -> None:
    seen, transport = overloaded_then_ok(2)
    with Client("http://wenda.test", backoff=0.001, transport=transport) as client:
        assert client.health().status == "ok"
    assert len(seen) == 3
    seen, transport = overloaded_then_ok(5)
    client = Client("http://wenda.test", max_retries=2, backoff=0.001, transport=transport)
    with client, pytest.raises(APIError) as raised:
        client.health()
    assert (raised.value.code, len(seen)) == ("overloaded", 3)


@pytest.mark.anyio
async def test_503_is_retried_by_the_async_client() -> None:
    seen, transport = overloaded_then_ok(2)
    async with AsyncClient("http://wenda.test", backoff=0.001, transport=transport) as client:
        assert (await client.health()).status == "ok"
    assert len(seen) == 3


def failing(error: httpx.HTTPError, times: int) -> tuple[list[httpx.Request], httpx.MockTransport]:
    """A transport failing `times` times with `error`, then answering as `/health` does."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= times:
            raise error
        return httpx.Response(200, json={"status": "ok"})

    return seen, httpx.MockTransport(answer)


def test_refused_connections_are_retried_but_timeouts_are_not() -> None:
    seen, transport = failing(httpx.ConnectError("refused"), 2)
    with Client("http://wenda.test", backoff=0.001, transport=transport) as client:
        assert client.health().status == "ok"
    assert len(seen) == 3
    # A timed-out request may have been acted on: it is reported, not sent again.
    seen, transport = failing(httpx.ReadTimeout("slow"), 1)
    client = Client("http://wenda.test", backoff=0.001, transport=transport)
    with client, pytest.raises(TransportError) as raised:
        client.health()
    assert len(seen) == 1
    assert isinstance(raised.value.__cause__, httpx.ReadTimeout)


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [
        ("wenda.langchain", "langchain_core", "langchain"),
        ("wenda.llama_index", "llama_index", "llama-index"),
    ],
)
def test_a_missing_framework_names_the_extra(module: str, framework: str, extra: str) -> None:
    # As if the framework were not installed.
    code = f"import sys; sys.modules[{framework!r}] = None; import {module}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert f"pip install 'wenda-client[{extra}]'" in done.stderr


@pytest.mark.parametrize(
    ("status", "body", "raised", "text"),
    [
        (502, b"<html>Bad Gateway</html>", APIError, "502 http_502: <html>Bad Gateway</html>"),
        (200, b"<html>a captive portal</html>", WendaError, "unexpected answer to GET /health"),
        (200, b'{"state": "ok"}', WendaError, "unexpected answer to GET /health"),
        (200, b"[]", WendaError, "expected a JSON object for Status"),
    ],
)
def test_answers_that_are_not_wendas_raise_clearly(
    status: int, body: bytes, raised: type[Exception], text: str
) -> None:
    # A proxy or another program answering in wenda's place.
    transport = httpx.MockTransport(lambda _: httpx.Response(status, content=body))
    client = Client("http://wenda.test", transport=transport)
    with client, pytest.raises(raised, match=re.escape(text)):
        client.health()


def test_no_server_is_a_transport_error() -> None:
    with Client("http://127.0.0.1:9", max_retries=1, backoff=0.001, timeout=5) as client:
        with pytest.raises(TransportError):
            client.info()
        with pytest.raises(WendaError, match="not ready"):
            client.wait_until_ready(timeout=0.1, interval=0.01)
