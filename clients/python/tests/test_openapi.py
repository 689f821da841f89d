"""The client against the server's own description of its API (`/openapi.json`): every route
the client calls exists with that method and path, every route it leaves out is left out for a
stated reason, and its types and options name exactly the server's fields."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import httpx
import pytest

from wenda import _calls
from wenda import types as t

from .conftest import Server

# Served routes the client does not wrap, and why.
NOT_WRAPPED = {
    "searchGet": "the query-string form of `search`; the client sends the body form",
    "collectionSearchGet": "the query-string form of `search`",
    "search": "`search` with `collection='default'` is the same route",
    "answer": "`answer` with `collection='default'` is the same route",
    "getPassage": "`passage` with `collection='default'` is the same route",
    "similarPassages": "`similar` with `collection='default'` is the same route",
    "search_page": "a page for people",
    "docs_page": "a page for people",
    "document": "the OpenAPI document itself",
    "render": "Prometheus metrics, for scrapers",
    "mcp": "for MCP clients",
    "difyRetrieval": "for Dify",
    "chatCompletions": "OpenAI's format, for OpenAI's clients and the frameworks' chat models "
    "(test_openai.py uses them); `answer` and `answer_stream` are wenda's own",
    "listModels": "the collections as OpenAI's models, for OpenAI's clients",
}

# Each answer type and the schema it decodes.
SCHEMAS: dict[type[Any], str] = {
    t.Status: "Status",
    t.Info: "Info",
    t.ModelInfo: "ModelInfo",
    t.DocumentRef: "DocumentRef",
    t.Position: "PositionView",
    t.Citation: "CitationView",
    t.Passage: "PassageView",
    t.Scores: "ComponentScores",
    t.SearchResult: "ScoredPassage",
    t.ContextCitation: "ContextCitation",
    t.Context: "Context",
    t.SearchResponse: "SearchResponse",
    t.SimilarResponse: "SimilarResponse",
    t.AnswerSentence: "AnswerSentenceView",
    t.AnswerCitation: "AnswerCitation",
    t.Answer: "AnswerResponse",
    t.TokenUsage: "TokenUsageView",
    t.Collection: "CollectionView",
    t.CollectionList: "CollectionList",
    t.DocumentSummary: "DocumentSummary",
    t.Document: "DocumentView",
    t.DocumentList: "DocumentList",
    t.PutDocumentResponse: "PutDocumentResponse",
    t.Deleted: "Deleted",
    t.JobDocuments: "JobDocuments",
    t.JobLineError: "JobLineError",
    t.Job: "JobView",
    t.EmbeddingData: "EmbeddingData",
    t.Usage: "Usage",
    t.EmbeddingsResponse: "EmbeddingsResponse",
}


@pytest.fixture(scope="module")
def api(server: Server) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{server.url}/openapi.json").json()
    return document


def operations(api: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        operation["operationId"]: (method.upper(), path)
        for path, methods in api["paths"].items()
        for method, operation in methods.items()
    }


def schema(api: dict[str, Any], name: str) -> tuple[set[str], set[str]]:
    """A schema's properties and required ones, `allOf` parts merged (later parts win)."""
    found = api["components"]["schemas"][name]
    parts = [found]
    if "allOf" in found:
        parts = [
            api["components"]["schemas"][part["$ref"].rsplit("/", 1)[1]] if "$ref" in part else part
            for part in found["allOf"]
        ]
    properties: set[str] = set()
    required: set[str] = set()
    for part in parts:
        properties |= set(part.get("properties", {}))
        required |= set(part.get("required", []))
    return properties, required


def test_every_route_is_wrapped_or_left_out_on_purpose(api: dict[str, Any]) -> None:
    served = operations(api)
    for name, route in _calls.OPERATIONS.items():
        assert served.get(name) == route, f"{name}: the client calls {route}"
    unaccounted = set(served) - set(_calls.OPERATIONS) - set(NOT_WRAPPED)
    assert not unaccounted, f"routes the client neither wraps nor explains: {unaccounted}"
    assert not set(NOT_WRAPPED) - set(served), "explained routes that no longer exist"


@pytest.mark.parametrize("cls", list(SCHEMAS), ids=lambda cls: cls.__name__)
def test_answer_types_have_the_servers_fields(api: dict[str, Any], cls: type[Any]) -> None:
    properties, required = schema(api, SCHEMAS[cls])
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(fields) == properties
    for name, field in fields.items():
        has_default = field.default is not dataclasses.MISSING or (
            field.default_factory is not dataclasses.MISSING
        )
        # A field the server may leave out must have a default, and only those may.
        assert has_default != (name in required) or name == "object", name


def test_options_are_the_servers_parameters(api: dict[str, Any]) -> None:
    def keys(typed: type[Any]) -> set[str]:
        return set(typing.get_type_hints(typed))

    search, _ = schema(api, "SearchRequest")
    assert keys(t.SearchOptions) | {"query"} == search
    answer, required = schema(api, "AnswerRequest")
    # `stream` is `answer_stream`'s, not an option.
    assert keys(t.AnswerOptions) | {"question", "stream"} == answer
    assert required == {"question"}
    assert keys(t.Turn) == schema(api, "Turn")[0] == schema(api, "Turn")[1]
    assert keys(t.Filter) == schema(api, "Filter")[0]
    assert keys(t.ContextBudget) == schema(api, "ContextBudget")[0]
    body, _ = schema(api, "DocumentBody")
    assert keys(t.DocumentFields) | {"text"} == body
    assert keys(t.NewDocument) == body | {"id"}
    similar = api["paths"]["/v1/collections/{collection}/passages/{id}/similar"]["get"]
    query = {p["name"] for p in similar["parameters"] if p["in"] == "query"}
    assert keys(t.SimilarOptions) == query
    documents = api["paths"]["/v1/collections/{collection}/documents"]["get"]
    assert {p["name"] for p in documents["parameters"] if p["in"] == "query"} == {
        "limit",
        "cursor",
    }


@pytest.mark.parametrize(
    ("literal", "name"),
    [
        (t.Mode, "Mode"),
        (t.DocumentFormat, "DocumentFormat"),
        (t.InputType, "InputType"),
        (t.AnswerMode, "AnswerMode"),
        (typing.get_type_hints(t.Turn)["role"], "TurnRole"),
    ],
)
def test_enumerations_match(api: dict[str, Any], literal: Any, name: str) -> None:
    assert set(typing.get_args(literal)) == set(api["components"]["schemas"][name]["enum"])
