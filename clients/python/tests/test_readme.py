"""Every Python block of the "Use from LangChain / LlamaIndex" section of the project's
docs/integrations.md, and the client README's examples of answers (streamed or not) and of chat
completions, run against a real server: the examples people copy must work as printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from .conftest import ROOT, SEED_FILE, Server

DOC = ROOT / "docs" / "integrations.md"
SECTION = "## Use from LangChain / LlamaIndex"
CLIENT_README = ROOT / "clients" / "python" / "README.md"


def blocks(language: str) -> list[str]:
    doc = DOC.read_text(encoding="utf-8")
    start = doc.index(SECTION)
    # The section runs to the next section, or to the end of the file.
    end = doc.find("\n## ", start + len(SECTION))
    section = doc[start : end if end != -1 else len(doc)]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def run(code: str, server: Server) -> str:
    code = code.replace("http://127.0.0.1:8080", server.url)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_section_has_its_examples() -> None:
    assert len(blocks("python")) == 3


@pytest.mark.parametrize("number", [0, 1])
def test_retriever_examples_print_cited_passages(server: Server, number: int) -> None:
    printed = run(blocks("python")[number], server)
    assert f"{SEED_FILE}:" in printed
    assert "徐汇区" in printed.split("\n")[1], "the answer comes first, with its citation"


def test_printed_output_is_what_the_example_prints(server: Server) -> None:
    printed = run(blocks("python")[1], server).splitlines()
    shown = [line for line in blocks("text")[0].splitlines() if line != "…"]

    def without_score(line: str) -> str:
        return re.sub(r"^\[\d\.\d{3}\] ", "", line)

    assert [without_score(line) for line in printed[: len(shown)]] == [
        without_score(line) for line in shown
    ]


def test_embedding_settings_example(server: Server) -> None:
    assert run(blocks("python")[2], server).split() == ["384", "384"]


def readme_blocks(title: str, language: str) -> list[str]:
    readme = CLIENT_README.read_text(encoding="utf-8")
    start = readme.index(f"\n## {title}\n")
    section = readme[start : readme.index("\n## ", start + 1)]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


@pytest.mark.parametrize("title", ["Answers", "Streamed answers and follow-ups"])
def test_client_readme_answer_examples_print_what_they_show(server: Server, title: str) -> None:
    (code,) = readme_blocks(title, "python")
    (shown,) = readme_blocks(title, "text")
    # The block goes on from the README's first one, which imports `Client`.
    assert run("from wenda import Client\n\n" + code, server) == shown


CHAT = "Chat completions: OpenAI's client, LangChain, LlamaIndex"


def test_client_readme_has_its_chat_examples() -> None:
    assert len(readme_blocks(CHAT, "python")) == 3


@pytest.mark.parametrize("number", [0, 1, 2], ids=["openai", "langchain", "llama-index"])
def test_client_readme_chat_examples_print_the_cited_answer(server: Server, number: int) -> None:
    printed = run(readme_blocks(CHAT, "python")[number], server).splitlines()
    assert "徐汇区" in printed[0]
    assert "[1]" in printed[0]
    if number == 0:
        assert printed[1] == f"[1] {SEED_FILE}:221"
    if number == 2:
        assert printed[1] == "2 citations"
