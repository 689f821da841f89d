"""What wenda answers, as typed, immutable values.

Field names are the API's own (see the server's `/openapi.json`; a test checks that every field
here is one the server documents and that every required one is here), so the server's
documentation reads straight onto these classes. Fields the server adds later are ignored
rather than refused, so an older client keeps working against a newer server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

Mode = Literal["hybrid", "dense", "lexical"]
"""How results are ranked: by meaning and shared words (`hybrid`), meaning only, or words only."""

InputType = Literal["query", "passage"]
"""What embedded texts are for; decides the prompt the model reads in front of them."""

DocumentFormat = Literal["plain", "markdown", "news"]
"""How a document's text is cut into paragraphs."""

AnswerMode = Literal["auto", "extractive", "generative"]
"""How an answer is made: quoted from the passages (`extractive`), written by the server's LLM
from them (`generative`, only where the server has one), or the server's choice (`auto`)."""


class Filter(TypedDict, total=False):
    """Conditions a passage must meet, all of them, to be ranked (applied before ranking)."""

    document: str
    """The passage's document id (for files of the corpus folder, the path)."""
    title: str
    """Text the title must contain, in either case."""
    date_from: str
    """First day admitted, `YYYY-MM-DD`, inclusive; undated passages are left out."""
    date_to: str
    """Last day admitted, `YYYY-MM-DD`, inclusive."""
    metadata: dict[str, Any]
    """Per metadata field: a value, a list of values, or one test such as `{"gte": 3}`,
    `{"in": [...]}`, `{"contains": "text"}`, `{"date_from": "YYYY-MM-DD"}`."""


class ContextBudget(TypedDict, total=False):
    """The size of a prompt-ready context block: exactly one of the two."""

    max_chars: int
    max_tokens: int


class SearchOptions(TypedDict, total=False):
    """Everything a search takes besides its query and collection."""

    top_k: int
    """How many passages to return, 1 to 100 (server default 5)."""
    mode: Mode
    filter: Filter
    min_score: float
    """Leave out results whose cosine similarity is below this (-1 to 1)."""
    context: ContextBudget
    """Also return the results as a numbered context block for a prompt, within this budget."""
    highlight: bool
    """Mark where each text contains the query's words (default true)."""
    ef_search: int
    """With the PostgreSQL store: HNSW candidates to keep (1 to 1000)."""


class Turn(TypedDict):
    """A message of the conversation before a question."""

    role: Literal["user", "assistant"]
    content: str


class AnswerOptions(TypedDict, total=False):
    """Everything an answer takes besides its question and collection."""

    mode: AnswerMode
    """Server default `auto`; `generative` needs an LLM on the server."""
    top_k: int
    """Passages the answer is drawn from, 1 to 100 (server default 5)."""
    filter: Filter
    """Narrows the passages considered, as in a search."""
    max_sentences: int
    """Most sentences of an extractive answer, the best included: 1 to 10 (server default 3)."""
    conversation: list[Turn]
    """The conversation before the question, oldest first, in which a follow-up ("那上海呢？")
    is understood: the server's LLM rewrites it to stand alone or, without one, a short
    follow-up is searched together with the previous question (see `standalone_question`)."""


class SimilarOptions(TypedDict, total=False):
    """What a "more like this" search takes besides the passage."""

    top_k: int
    min_score: float
    ef_search: int


class DocumentFields(TypedDict, total=False):
    """A document's optional fields, as `put_document` and imports take them."""

    title: str
    date: str
    """`YYYY-MM-DD`, or as printed; recognised dates can be filtered on."""
    source: str
    url: str
    metadata: dict[str, Any]
    """A flat object of strings, numbers, booleans and lists of strings."""
    format: DocumentFormat


class NewDocument(DocumentFields):
    """One document of an import: its id and text, with the optional fields."""

    id: str
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Status:
    """`/health` and `/ready`: `ok`, `ready`."""

    status: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelInfo:
    id: str
    dimensions: int
    pooling: str
    max_tokens: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Info:
    version: str
    model: ModelInfo
    collections: int
    passages: int
    documents: int
    index_bytes: int
    kernels: str
    """The CPU kernel level the server's encoder runs (`avx512-vnni`, `avx2`, ...)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DocumentRef:
    """The document a passage comes from."""

    path: str
    """The document's id; for files of the corpus folder, the path relative to it."""
    title: str | None = None
    date: str | None = None
    """`YYYY-MM-DD` when the printed date is a recognised day, else as printed."""
    source: str | None = None
    url: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Position:
    """Where a passage sits in its document (1-based)."""

    article: int
    first_paragraph: int
    last_paragraph: int
    piece: int
    pieces: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Citation:
    """Where a passage's text is in its document, for a person to check."""

    path: str
    line_start: int
    """1-based, inclusive."""
    line_end: int
    byte_start: int
    """Byte offsets into the document's text, end exclusive."""
    byte_end: int
    page_start: int | None = None
    """1-based pages, inclusive, when the document has pages (form-feed page breaks in its
    text, as text extracted from a PDF has); `None` otherwise."""
    page_end: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Passage:
    id: str
    text: str
    document: DocumentRef
    position: Position
    citation: Citation
    metadata: dict[str, Any] = field(default_factory=dict)
    """The document's own metadata."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Scores:
    """The components behind a result's `score`, each present when the mode used it."""

    dense: float | None = None
    lexical: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchResult(Passage):
    score: float
    scores: Scores
    highlights: list[tuple[int, int]] | None = None
    """Where the text contains the query's words: `[start, end)` in code points."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ContextCitation:
    """What `[number]` in a context block refers to."""

    number: int
    id: str
    path: str
    line_start: int
    line_end: int
    title: str | None = None
    date: str | None = None
    source: str | None = None
    url: str | None = None
    page_start: int | None = None
    """1-based pages, inclusive, when the document has pages; `None` otherwise."""
    page_end: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Context:
    """The results as a numbered block to paste into a prompt, with what its numbers cite."""

    text: str
    citations: list[ContextCitation]
    omitted: int
    cut: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchResponse:
    query: str
    mode: Mode
    truncated: bool
    """The query was longer than the model's window; only its beginning was used."""
    results: list[SearchResult]
    took_ms: float
    query_tokens: int | None = None
    context: Context | None = None
    document_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each result's document's metadata, by `document.path` (also in each result's `metadata`)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AnswerSentence:
    """A sentence of an answer, exactly as in the passage it quotes."""

    text: str
    citations: list[int]
    """The `index` of each `AnswerCitation` it rests on."""
    score: float
    """Confidence that it answers the question, 0 to 1."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AnswerCitation:
    """What `[index]` in an answer refers to: a passage and the sentence quoted from it."""

    index: int
    id: str
    """The passage's id (see `Client.passage`); the passage is among the answer's `passages`."""
    quote: str
    """The sentence quoted, exactly as in the passage's text."""
    quote_span: tuple[int, int]
    """Where `quote` is in the passage's text: `[start, end)` in code points, so
    `passage.text[start:end] == quote`."""
    document: DocumentRef
    citation: Citation


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenUsage:
    """Tokens the server's LLM counted for a generative answer."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    """The answer to a question, with the citations and passages it rests on (and the last
    event of a streamed answer)."""

    question: str
    mode: Literal["extractive", "generative"]
    """How the answer was made."""
    found: bool
    """Whether the documents answer the question. When not, `answer` is the server's refusal
    text, `sentences` and `citations` are empty, and `passages` still lists what was found."""
    answer: str
    """The answer, each sentence followed by its `[index]` marker."""
    sentences: list[AnswerSentence]
    """Best first."""
    citations: list[AnswerCitation]
    passages: list[SearchResult]
    """The search results the answer was drawn from, best first."""
    took_ms: float
    document_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each passage's document's metadata, by `document.path` (also in each passage's
    `metadata`)."""
    standalone_question: str | None = None
    """The question searched for, when a follow-up of a `conversation` was rewritten to stand
    alone; `None` when `question` was searched as it is."""
    usage: TokenUsage | None = None
    """Tokens the LLM counted, for a generative answer whose LLM reports them."""
    finish_reason: Literal["stop", "length"] | None = None
    """Why the LLM stopped writing, for a generative answer it wrote: `"length"` when it ran
    into the server's `--llm-max-tokens` and the answer is cut short."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AnswerSource:
    """A passage a streamed answer may cite, under the `[index]` it will have in it."""

    index: int
    id: str
    """The passage's id (see `Client.passage`)."""
    document: DocumentRef
    citation: Citation


@dataclass(frozen=True, kw_only=True, slots=True)
class AnswerSources:
    """The first event of a streamed answer: what its `[n]` markers may refer to."""

    sources: list[AnswerSource]


@dataclass(frozen=True, kw_only=True, slots=True)
class AnswerDelta:
    """The next piece of a streamed answer's text, to show as it comes. For an extractive
    answer the pieces joined are the final `Answer.answer`; a generative answer's final text
    may differ from what was streamed (markers attached where the LLM wrote none, or the
    refusal text when it did not answer): the `Answer` that ends the stream has the last
    word."""

    text: str


AnswerEvent = AnswerSources | AnswerDelta | Answer
"""What `Client.answer_stream` yields: `AnswerSources`, then `AnswerDelta`s, then the `Answer`
(the same object `Client.answer` returns)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SimilarResponse:
    id: str
    results: list[SearchResult]
    took_ms: float
    document_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each result's document's metadata, by `document.path` (also in each result's `metadata`)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Collection:
    name: str
    documents: int
    passages: int
    text_bytes: int
    vector_bytes: int
    model: ModelInfo
    created_at: int
    """Milliseconds since the Unix epoch."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CollectionList:
    collections: list[Collection]


@dataclass(frozen=True, kw_only=True, slots=True)
class _DocumentFields:
    id: str
    metadata: dict[str, Any]
    format: str
    origin: str
    """`api` (written through the API) or `corpus` (a file of the server's corpus folder)."""
    created_at: int
    updated_at: int
    title: str | None = None
    date: str | None = None
    source: str | None = None
    url: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DocumentSummary(_DocumentFields):
    """A document's fields, without its text."""

    passages: int
    """How many passages it was cut into."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Document(_DocumentFields):
    """A document with its text and passages."""

    text: str
    passages: list[Passage]


@dataclass(frozen=True, kw_only=True, slots=True)
class DocumentList:
    documents: list[DocumentSummary]
    next_cursor: str | None = None
    """Give it back as `cursor` for the next page; `None` after the last."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PutDocumentResponse:
    id: str
    passages: int
    embedded: int
    """Passages the model embedded."""
    reused: int
    """Passages whose vector was reused: the same text was embedded before."""
    took_ms: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Deleted:
    id: str
    deleted: bool
    passages: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class JobDocuments:
    total: int
    done: int
    failed: int


@dataclass(frozen=True, kw_only=True, slots=True)
class JobLineError:
    """A line of an import that was not written."""

    line: int
    code: str
    message: str
    file: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Job:
    """An import job: where it is and what it did."""

    id: str
    collection: str
    status: Literal["queued", "running", "completed", "failed"]
    documents: JobDocuments
    passages: int
    embedded: int
    reused: int
    tokens: int
    tokens_per_second: float
    created_at: int
    errors: list[JobLineError]
    started_at: int | None = None
    finished_at: int | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")


@dataclass(frozen=True, kw_only=True, slots=True)
class EmbeddingData:
    index: int
    embedding: list[float]
    """L2-normalised: the dot product of two vectors is their cosine similarity."""
    truncated: bool
    object: str = "embedding"


@dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    prompt_tokens: int
    total_tokens: int


@dataclass(frozen=True, kw_only=True, slots=True)
class EmbeddingsResponse:
    data: list[EmbeddingData]
    model: str
    usage: Usage
    object: str = "list"

    @property
    def vectors(self) -> list[list[float]]:
        """The vectors, in input order."""
        return [item.embedding for item in self.data]
