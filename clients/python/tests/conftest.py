"""Real servers for the tests: the project's release binary (`wenda serve`) started on a free
loopback port, once per session, over a data directory of its own; one of them answers through a
real LLM, the server `WENDA_TEST_LLM_URL` names."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from wenda import Client
from wenda.types import NewDocument

ROOT = Path(__file__).resolve().parents[3]
SEED_FILE = "000_6b84f5fb9e9426be.txt"
WRITE_KEY = "test-write-key"
READ_KEY = "test-read-key"


def _binary() -> Path:
    if "WENDA_BIN" in os.environ:
        return Path(os.environ["WENDA_BIN"])
    return ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "release" / "wenda"


class Server:
    """A running `wenda serve` and the lines it has logged."""

    def __init__(self, data_dir: Path, *arguments: str) -> None:
        command = [str(_binary()), "serve", "--addr", "127.0.0.1:0", "--data-dir", str(data_dir)]
        self.process = subprocess.Popen(
            [*command, "--log-format", "json", *arguments],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            # Only the arguments give a server an LLM, not the environment of whoever runs this.
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("WENDA_LLM_")},
                "RUST_LOG": "info",
            },
        )
        self.log: list[str] = []
        address: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_log, args=(address,), daemon=True).start()
        try:
            self.url = "http://" + address.get(timeout=60)
            with Client(self.url, api_key=WRITE_KEY) as client:
                client.wait_until_ready(timeout=300)
        except Exception as error:
            self.stop()
            tail = "\n".join(self.log[-30:])
            raise RuntimeError(f"wenda serve did not become ready:\n{tail}") from error

    def _read_log(self, address: queue.Queue[str]) -> None:
        # Drains stderr (so the server never blocks on it) and hands over the bound address.
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip())
            try:
                fields = json.loads(line).get("fields", {})
            except ValueError:
                continue
            if str(fields.get("message", "")).startswith("listening"):
                address.put(fields["addr"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over `seeds/` without keys, as `cargo run --release -- serve` starts it."""
    running = Server(tmp_path_factory.mktemp("data"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a read-write and a read-only key, and no corpus."""
    running = Server(
        tmp_path_factory.mktemp("keyed"),
        "--no-corpus",
        "--api-key",
        WRITE_KEY,
        "--read-api-key",
        READ_KEY,
    )
    yield running
    running.stop()


LLM_MODEL = "smollm2"


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over `seeds/` whose answers are written by the test LLM: llama.cpp's server with
    SmolLM2-135M-Instruct (model alias `smollm2`), at the OpenAI base URL `WENDA_TEST_LLM_URL`,
    which `./scripts/test.sh` starts and sets. Its answers are poor and slow to come (it runs
    one request at a time, on one thread): the tests that use it check the protocol, and few."""
    url = os.environ.get("WENDA_TEST_LLM_URL")
    if not url:
        pytest.fail(
            "WENDA_TEST_LLM_URL names the test LLM server (an OpenAI base URL, "
            "http://127.0.0.1:PORT/v1, of a server with the model alias smollm2): run "
            "./scripts/test.sh, which starts one (scripts/llm-server.sh start) and sets it",
            pytrace=False,
        )
    running = Server(
        tmp_path_factory.mktemp("llm"),
        "--llm-base-url",
        url,
        "--llm-model",
        LLM_MODEL,
        "--llm-max-tokens",
        "48",
        "--llm-temperature",
        "0",
        # Generous: the test LLM may be busy with another request when one comes.
        "--llm-timeout",
        "120",
    )
    yield running
    running.stop()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url) as connected:
        yield connected


@pytest.fixture
def collection(client: Client) -> Iterator[str]:
    """A new, empty collection of the seed server, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    client.create_collection(name)
    yield name
    client.delete_collection(name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


NOTES: list[NewDocument] = [
    {
        "id": "modu",
        "text": "模速空间是上海市打造的人工智能大模型专业孵化和加速平台，位于徐汇区。\n\n"
        "已入驻企业100余家。",
        "title": "上海大模型孵化器",
        "date": "2025-04-29",
        "metadata": {"lang": "zh", "year": 2025, "tags": ["ai", "shanghai"]},
    },
    {
        "id": "incubator-en",
        "text": "The Shanghai large-model incubator in Xuhui hosts over a hundred companies.",
        "title": "Shanghai incubator",
        "date": "2025-05-01",
        "metadata": {"lang": "en", "year": 2025, "tags": ["ai"]},
    },
    {
        "id": "bread",
        "text": "Sourdough needs a starter, flour, water and salt; the dough rises overnight.",
        "title": "Baking sourdough",
        "date": "2024-03-02",
        "metadata": {"lang": "en", "year": 2024, "tags": ["food"]},
    },
    {
        "id": "garden",
        "text": "番茄需要充足的阳光和排水良好的土壤。",
        "title": "种番茄",
        "date": "2023-06-10",
        "metadata": {"lang": "zh", "year": 2023, "tags": ["garden"]},
    },
]


@pytest.fixture
def notes(client: Client, collection: str) -> str:
    """A collection holding `NOTES`, imported and searchable."""
    job = client.wait_for_job(client.import_documents(collection, NOTES).id, timeout=120)
    assert (job.status, job.documents.done) == ("completed", len(NOTES)), job
    return collection
