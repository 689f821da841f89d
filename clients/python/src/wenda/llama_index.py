"""A LlamaIndex retriever over wenda's search (`pip install 'wenda-client[llama-index]'`).

```python
from wenda.llama_index import WendaRetriever

retriever = WendaRetriever(url="http://127.0.0.1:8080", top_k=3)
for hit in retriever.retrieve("模速空间在哪个区？"):
    print(hit.score, hit.node.metadata["title"], hit.node.metadata["citation"], hit.node.text)
```

Each `NodeWithScore` is one passage: a `TextNode` whose `id_` is the passage id and whose
`metadata` carries `score`, `scores`, `id`, `title`, `date`, `source`, `url`, `document`,
`citation`, `position` and `document_metadata`; the technical keys are excluded from what an LLM
or an embedding model is shown, so prompts get the title, date, source and url with each passage.
Use it wherever LlamaIndex takes a retriever (`RetrieverQueryEngine`, chat engines, ...).
"""

from __future__ import annotations

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ModuleNotFoundError as missing:
    raise ImportError(
        f"wenda.llama_index needs llama-index-core ({missing}): "
        "pip install 'wenda-client[llama-index]'"
    ) from missing

from . import types as t
from ._client import DEFAULT_COLLECTION, Clients
from ._metadata import TECHNICAL_KEYS, result_metadata

__all__ = ["WendaRetriever"]


class WendaRetriever(BaseRetriever):
    """Retrieves passages with wenda's search (`retrieve` and `aretrieve`)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        top_k: int = 5,
        mode: t.Mode = "hybrid",
        filter: t.Filter | None = None,
        min_score: float | None = None,
        timeout: float = 30.0,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
        base_url: str | None = None,
    ) -> None:
        """`url` defaults to `$WENDA_URL`, else `http://127.0.0.1:8080`; `base_url` (the name
        OpenAI's clients use) is another name for it. `api_key` (a read key is enough) defaults
        to `$WENDA_API_KEY`. `filter` narrows the passages before ranking."""
        if base_url is not None:
            if url is not None:
                raise TypeError("give the server's address as url or as base_url, not both")
            url = base_url
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.collection = collection
        self.options: t.SearchOptions = {"top_k": top_k, "mode": mode, "highlight": False}
        if filter is not None:
            self.options["filter"] = filter
        if min_score is not None:
            self.options["min_score"] = min_score
        self._clients = Clients(url, api_key, timeout)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        client = self._clients.sync()
        answer = client.search(query_bundle.query_str, collection=self.collection, **self.options)
        return _nodes(answer)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        client = self._clients.asynchronous()
        answer = await client.search(
            query_bundle.query_str, collection=self.collection, **self.options
        )
        return _nodes(answer)


def _nodes(answer: t.SearchResponse) -> list[NodeWithScore]:
    hidden = [*TECHNICAL_KEYS, "document_metadata"]
    return [
        NodeWithScore(
            node=TextNode(
                id_=result.id,
                text=result.text,
                metadata=result_metadata(result),
                excluded_llm_metadata_keys=hidden,
                excluded_embed_metadata_keys=hidden,
            ),
            score=result.score,
        )
        for result in answer.results
    ]
