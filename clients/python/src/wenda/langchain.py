"""A LangChain retriever over wenda's search (`pip install 'wenda-client[langchain]'`).

```python
from wenda.langchain import WendaRetriever

retriever = WendaRetriever(url="http://127.0.0.1:8080", top_k=3)
for doc in retriever.invoke("模速空间在哪个区？"):
    print(doc.metadata["title"], doc.metadata["citation"], doc.page_content)
```

Each `Document` is one passage: `page_content` is its text, `id` its passage id, and
`metadata` carries `score`, `scores`, `id`, `title`, `date`, `source`, `url`, `document`,
`citation` (path, lines, bytes), `position` and `document_metadata`. The ranking is wenda's own
(hybrid by default, filters applied before ranking), not a vector store's.
"""

from __future__ import annotations

from typing import Any, cast

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, model_validator
except ModuleNotFoundError as missing:
    raise ImportError(
        f"wenda.langchain needs langchain-core ({missing}): pip install 'wenda-client[langchain]'"
    ) from missing

from . import types as t
from ._client import DEFAULT_COLLECTION, Clients
from ._metadata import result_metadata

__all__ = ["WendaRetriever"]


class WendaRetriever(BaseRetriever):
    """Retrieves passages with wenda's search (sync `invoke` and async `ainvoke`)."""

    # An argument it does not know is refused, not ignored (a misspelt one would otherwise
    # leave a setting at its default without a word).
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    url: str | None = None
    """The server; `$WENDA_URL` or `http://127.0.0.1:8080` when unset."""
    base_url: str | None = Field(default=None, repr=False)
    """Another name for `url` (the one OpenAI's clients use), for the constructor: give one or
    the other. Its value is moved to `url`."""
    api_key: SecretStr | None = None
    """A read key, when the server has keys; `$WENDA_API_KEY` when unset."""
    collection: str = DEFAULT_COLLECTION
    top_k: int = Field(default=5, ge=1, le=100)
    mode: t.Mode = "hybrid"
    # A plain dict for pydantic, which cannot validate `typing.TypedDict` before Python 3.12.
    filter: dict[str, Any] | None = None
    """Conditions applied before ranking, as `wenda.types.Filter`: `document`, `title`,
    `date_from`, `date_to`, `metadata` (see the server's docs/api.md)."""
    min_score: float | None = None
    timeout: float = 30.0

    _clients: Clients | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_url(self) -> WendaRetriever:
        if self.base_url is not None:
            if self.url is not None:
                raise ValueError("give the server's address as url or as base_url, not both")
            # Only `url` is kept, so that a copy made from the fields (as LangChain's
            # `configurable_fields` makes them) is valid too.
            self.url, self.base_url = self.base_url, None
        return self

    def _options(self) -> t.SearchOptions:
        options: t.SearchOptions = {"top_k": self.top_k, "mode": self.mode, "highlight": False}
        if self.filter is not None:
            options["filter"] = cast(t.Filter, self.filter)
        if self.min_score is not None:
            options["min_score"] = self.min_score
        return options

    def _connection(self) -> Clients:
        if self._clients is None:
            key = None if self.api_key is None else self.api_key.get_secret_value()
            self._clients = Clients(self.url, key, self.timeout)
        return self._clients

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        client = self._connection().sync()
        return _documents(client.search(query, collection=self.collection, **self._options()))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        client = self._connection().asynchronous()
        answer = await client.search(query, collection=self.collection, **self._options())
        return _documents(answer)


def _documents(answer: t.SearchResponse) -> list[Document]:
    return [
        Document(page_content=result.text, id=result.id, metadata=result_metadata(result))
        for result in answer.results
    ]
