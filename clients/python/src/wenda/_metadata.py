"""What a search result tells a framework about itself, the same for LangChain and LlamaIndex."""

from __future__ import annotations

from typing import Any

from .types import SearchResult

# Keys a language model reading the passage does not need (LlamaIndex leaves them out of the
# text it builds a prompt from; titles, dates and sources stay).
TECHNICAL_KEYS = ("id", "score", "scores", "document", "citation", "position")


def result_metadata(result: SearchResult) -> dict[str, Any]:
    """Score, id, title, date, source, url and citation of a result, plus the document's own
    metadata under `document_metadata` (kept apart so its keys cannot shadow these)."""
    document, citation, position = result.document, result.citation, result.position
    return {
        "id": result.id,
        "score": result.score,
        "scores": {"dense": result.scores.dense, "lexical": result.scores.lexical},
        "title": document.title,
        "date": document.date,
        "source": document.source,
        "url": document.url,
        "document": document.path,
        "citation": {
            "path": citation.path,
            "line_start": citation.line_start,
            "line_end": citation.line_end,
            "byte_start": citation.byte_start,
            "byte_end": citation.byte_end,
        },
        "position": {
            "article": position.article,
            "first_paragraph": position.first_paragraph,
            "last_paragraph": position.last_paragraph,
        },
        "document_metadata": dict(result.metadata),
    }
