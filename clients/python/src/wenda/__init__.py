"""Client of wenda, a multilingual retrieval service.

```python
from wenda import Client

with Client("http://127.0.0.1:8080") as wenda:
    for result in wenda.search("模速空间在哪个区？", top_k=3).results:
        print(result.score, result.document.title, result.citation.line_start, result.text)
```

`AsyncClient` has the same methods, awaited. Retrievers for LangChain and LlamaIndex are in
`wenda.langchain` and `wenda.llama_index` (extras `[langchain]` and `[llama-index]`).
"""

from ._client import DEFAULT_COLLECTION, DEFAULT_URL, AsyncClient, Client
from .errors import APIError, TransportError, WendaError

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_URL",
    "APIError",
    "AsyncClient",
    "Client",
    "TransportError",
    "WendaError",
]
