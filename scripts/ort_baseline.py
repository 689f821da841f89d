"""ONNX Runtime baseline for `wenda-bench embed`: the same model and workload, run by ORT.

Why this exists: wenda ships its own int8 BERT encoder, and the fair question is how it compares
with what a user would otherwise deploy, ONNX Runtime with dynamic int8 quantization (the path of
fastembed and of TEI's ORT backend). This script is a benchmark a person runs through
`scripts/bench-ort.sh`; it is not a test and must not run in CI.

What it does:

1. Builds an ONNX graph of multilingual-e5-small by hand with `onnx.helper` (no torch, no
   transformers) from `model.safetensors` (Hugging Face BERT tensor names) and `config.json`:
   word + position + token-type embeddings, LayerNormalization (opset 17, eps from the config),
   the encoder layers (self-attention with an additive mask, erf GELU, post-LN), then mean pooling
   over the attention mask and L2 normalisation inside the graph. The graph follows the layout of
   a PyTorch export of `BertModel`, so ORT's transformer optimizer recognises and fuses it.
2. Derives variants: f32; int8 from `quantize_dynamic` (QInt8 weights, per-tensor and per-channel);
   and the same three after `onnxruntime.transformers.optimizer.optimize_model` fusion.
3. Checks every variant against `shared/fixtures/e5_reference.json` (token ids exactly; embeddings
   by cosine). f32 variants must reach cosine >= 0.9999 or the script fails; int8 variants report
   their lowest cosine.
4. Times each variant on exactly the workload of
   `wenda-bench embed --no-baseline --passages 200 --queries 300` (bench/src/embed.rs):
   - dataset: SQuAD-format JSON read as src/squad.rs does: contexts de-duplicated by exact text
     in first-occurrence order, questions in file order;
   - queries: the first N questions, each embedded alone with the model's query prompt
     (`query: `), after 5 warm-up calls on the first 5 questions; each timing covers tokenization,
     padding, the forward pass and pooling, like `Embedder::embed_one`; p50/p90 use embed.rs's
     index rule `sorted[round((n - 1) * p)]`;
   - passages: the first M contexts with the passage prompt (`passage: `), tokenized with special
     tokens and truncated at 512 tokens, grouped by src/embedding/batching.rs's `plan_batches`
     (longest first, at most 16,384 padded tokens and 128 inputs per batch, an input over budget
     alone), padded with the pad token to each batch's longest member; the timing covers
     tokenization too, and tokens/s counts real (unpadded, truncated) tokens, as embed.rs does.

Session options: intra-op threads = the CPUs this process may use (what wenda's
`available_parallelism` sees; pass --threads to override), inter-op threads 1, sequential
execution, graph optimisation level ALL. Each variant is timed with ORT's intra-op thread spinning
on (its default) and off: on a shared, loaded machine busy-waiting workers can double ORT's query
latency, so the comparison takes whichever is better rather than only the default.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model
from safetensors.numpy import load_file
from tokenizers import Tokenizer

OPSET = 17
F32_MIN_COSINE = 0.9999
# src/embedding/batching.rs, BatchLimits::default(); wenda-bench embed's --batch-tokens default.
TOKEN_BUDGET = 16_384
MAX_INPUTS = 128
# src/embedding/config.rs: absolute position tables of BERT sentence models stop at 512.
MAX_MODEL_TOKENS = 512
WARMUP_QUERIES = 5
ALL_VARIANTS = (
    "f32",
    "int8",
    "int8-per-channel",
    "fused-f32",
    "fused-int8",
    "fused-int8-per-channel",
)


# ---------------------------------------------------------------------------------------------
# Model: configuration, tokenizer, graph


@dataclass
class ModelConfig:
    hidden: int
    heads: int
    layers: int
    eps: float
    pad_id: int
    max_tokens: int
    query_prompt: str
    passage_prompt: str

    @classmethod
    def read(cls, model_dir: Path) -> ModelConfig:
        config = json.loads((model_dir / "config.json").read_text())
        if config.get("model_type", "bert") != "bert":
            sys.exit(f"{model_dir}: model_type {config['model_type']!r}; this script builds BERT only")
        prompts = {"query": "query: ", "passage": "passage: "}  # e5's, as wenda's fallback
        st = model_dir / "config_sentence_transformers.json"
        if st.exists():
            prompts.update(json.loads(st.read_text()).get("prompts", {}))
        return cls(
            hidden=config["hidden_size"],
            heads=config["num_attention_heads"],
            layers=config["num_hidden_layers"],
            eps=config["layer_norm_eps"],
            pad_id=config.get("pad_token_id", 0),
            max_tokens=min(config["max_position_embeddings"], MAX_MODEL_TOKENS),
            query_prompt=prompts["query"],
            passage_prompt=prompts["passage"],
        )


def load_tokenizer(model_dir: Path, max_tokens: int) -> Tokenizer:
    """The tokenizer as wenda configures it: no padding, truncation at the model's window."""
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens, stride=0, strategy="longest_first", direction="right")
    return tokenizer


class GraphBuilder:
    """Accumulates nodes and initializers; names are unique by construction."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.require(value, requirements="C"), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        self.count += 1
        out = name or f"{op_type.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"n{self.count}_{op_type}", **attrs))
        return out

    def linear(self, x: str, weights: dict, prefix: str) -> str:
        """`x @ W.T + b` as MatMul then Add, the form a PyTorch export of nn.Linear takes."""
        w = self.const(f"{prefix}.weight_t", weights[f"{prefix}.weight"].T)
        b = self.const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return self.op("Add", [self.op("MatMul", [x, w]), b])

    def layer_norm(self, x: str, weights: dict, prefix: str, eps: float) -> str:
        g = self.const(f"{prefix}.weight", weights[f"{prefix}.weight"])
        b = self.const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return self.op("LayerNormalization", [x, g, b], axis=-1, epsilon=eps)


def build_graph(model_dir: Path, cfg: ModelConfig) -> onnx.ModelProto:
    """BERT encoder + mean pooling + L2 normalisation, laid out like torch.onnx's BertModel export.

    Inputs: input_ids, attention_mask, token_type_ids (int64, [batch, seq]).
    Output: sentence_embedding (float32, [batch, hidden]), unit length.
    """
    w = load_file(str(model_dir / "model.safetensors"))
    if "embeddings.word_embeddings.weight" not in w:  # checkpoints saved from a wrapper
        w = {k.split(".", 1)[1]: v for k, v in w.items() if k.startswith("bert.")}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    g = GraphBuilder()
    h, heads = cfg.hidden, cfg.heads
    head_dim = h // heads

    # Embeddings. Position ids are a slice of a [1, max] constant, ended at the sequence length:
    # the pattern ORT's EmbedLayerNormalization fusion expects from BERT exports.
    word = g.op("Gather", [g.const("word_embeddings", w["embeddings.word_embeddings.weight"]), "input_ids"])
    seq_len = g.op(
        "Gather", [g.op("Shape", ["input_ids"]), g.const("one_i64", np.array(1, np.int64))], axis=0
    )
    seq_end = g.op("Unsqueeze", [seq_len, g.const("axes_0", np.array([0], np.int64))])
    max_pos = w["embeddings.position_embeddings.weight"].shape[0]
    position_ids = g.op(
        "Slice",
        [
            g.const("position_ids", np.arange(max_pos, dtype=np.int64)[None, :]),
            g.const("slice_start", np.array([0], np.int64)),
            seq_end,
            g.const("slice_axes", np.array([1], np.int64)),
            g.const("slice_steps", np.array([1], np.int64)),
        ],
    )
    position = g.op(
        "Gather", [g.const("position_embeddings", w["embeddings.position_embeddings.weight"]), position_ids]
    )
    token_type = g.op(
        "Gather",
        [g.const("token_type_embeddings", w["embeddings.token_type_embeddings.weight"]), "token_type_ids"],
    )
    x = g.op("Add", [g.op("Add", [word, token_type]), position])
    x = g.layer_norm(x, w, "embeddings.LayerNorm", cfg.eps)

    # Additive attention mask shared by every layer: (1 - mask) * float32 min, as transformers does.
    mask4 = g.op(
        "Unsqueeze",
        [
            g.op("Unsqueeze", ["attention_mask", g.const("axes_1", np.array([1], np.int64))]),
            g.const("axes_2", np.array([2], np.int64)),
        ],
    )
    mask4 = g.op("Cast", [mask4], to=TensorProto.FLOAT)
    additive_mask = g.op(
        "Mul",
        [
            g.op("Sub", [g.const("one_f32", np.array(1.0, np.float32)), mask4]),
            g.const("mask_fill", np.array(np.finfo(np.float32).min, np.float32)),
        ],
    )

    split_heads = g.const("split_heads_shape", np.array([0, 0, heads, head_dim], np.int64))
    merge_heads = g.const("merge_heads_shape", np.array([0, 0, h], np.int64))
    scale = g.const("score_scale", np.array(math.sqrt(head_dim), np.float32))
    sqrt2 = g.const("sqrt2", np.array(math.sqrt(2.0), np.float32))
    one = g.const("gelu_one", np.array(1.0, np.float32))
    half = g.const("gelu_half", np.array(0.5, np.float32))
    for layer in range(cfg.layers):
        p = f"encoder.layer.{layer}"
        q = g.op(
            "Transpose",
            [g.op("Reshape", [g.linear(x, w, f"{p}.attention.self.query"), split_heads])],
            perm=[0, 2, 1, 3],
        )
        k = g.op(
            "Transpose",
            [g.op("Reshape", [g.linear(x, w, f"{p}.attention.self.key"), split_heads])],
            perm=[0, 2, 3, 1],
        )
        v = g.op(
            "Transpose",
            [g.op("Reshape", [g.linear(x, w, f"{p}.attention.self.value"), split_heads])],
            perm=[0, 2, 1, 3],
        )
        scores = g.op("Add", [g.op("Div", [g.op("MatMul", [q, k]), scale]), additive_mask])
        probs = g.op("Softmax", [scores], axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, merge_heads])
        attn = g.linear(context, w, f"{p}.attention.output.dense")
        x = g.layer_norm(g.op("Add", [attn, x]), w, f"{p}.attention.output.LayerNorm", cfg.eps)
        inter = g.linear(x, w, f"{p}.intermediate.dense")
        erf = g.op("Erf", [g.op("Div", [inter, sqrt2])])
        gelu = g.op("Mul", [g.op("Mul", [inter, g.op("Add", [erf, one])]), half])
        out = g.linear(gelu, w, f"{p}.output.dense")
        x = g.layer_norm(g.op("Add", [out, x]), w, f"{p}.output.LayerNorm", cfg.eps)

    # Mean pooling over real tokens, then L2 normalisation.
    mask3 = g.op(
        "Cast",
        [g.op("Unsqueeze", ["attention_mask", g.const("axes_m1", np.array([-1], np.int64))])],
        to=TensorProto.FLOAT,
    )
    axis1 = g.const("reduce_axis_1", np.array([1], np.int64))
    summed = g.op("ReduceSum", [g.op("Mul", [x, mask3]), axis1], keepdims=0)
    count = g.op("ReduceSum", [mask3, axis1], keepdims=0)
    mean = g.op("Div", [summed, count])
    norm = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [mean, mean]), axis1], keepdims=1)])
    g.op("Div", [mean, norm], name="sentence_embedding")

    ids = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
        for n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", h])
    graph = helper.make_graph(g.nodes, "multilingual_e5_small", ids, [output], g.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="wenda-ort-baseline"
    )
    onnx.checker.check_model(model)
    return model


def build_variants(model_dir: Path, cfg: ModelConfig, work: Path, wanted: list[str]) -> dict[str, Path]:
    """Writes each wanted variant's .onnx under `work`; returns name -> path (rebuilt every run)."""
    work.mkdir(parents=True, exist_ok=True)
    paths = {name: work / f"e5-small-{name}.onnx" for name in ALL_VARIANTS}
    started = time.perf_counter()
    # Two expected warnings are silenced: optimize_model's "producer not matched" (the graph is not
    # a PyTorch export, but has its layout: every fusion applies), and quantize_dynamic's advice to
    # run quant_pre_process first (tried: identical cosines and speed on this graph).
    logging.disable(logging.WARNING)
    try:
        _build(model_dir, cfg, paths, wanted)
    finally:
        logging.disable(logging.NOTSET)
    print(f"  built {len(wanted)} variant(s) in {time.perf_counter() - started:.0f} s under {work}")
    return {name: paths[name] for name in wanted}


def _build(model_dir: Path, cfg: ModelConfig, paths: dict[str, Path], wanted: list[str]) -> None:
    onnx.save(build_graph(model_dir, cfg), paths["f32"])
    if any(name.startswith("fused") for name in wanted):
        # opt_level=0: the Python fusions only. Levels >= 1 first run an ORT pass whose helper
        # imports torch; the session applies ORT's own level-ALL optimisations at load anyway.
        fused = optimize_model(
            str(paths["f32"]), model_type="bert", num_heads=cfg.heads, hidden_size=cfg.hidden, opt_level=0
        )
        stats = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
        print(f"  optimize_model fused: {json.dumps(stats)}")
        fused.save_model_to_file(str(paths["fused-f32"]))
    for name in wanted:
        if "int8" in name:
            source = paths["fused-f32" if name.startswith("fused") else "f32"]
            quantize_dynamic(
                source,
                paths[name],
                weight_type=QuantType.QInt8,
                per_channel=name.endswith("per-channel"),
                # Shape inference cannot type the outputs of the fused com.microsoft ops; every
                # float tensor in this graph is float32.
                extra_options={"DefaultTensorType": TensorProto.FLOAT},
            )


# ---------------------------------------------------------------------------------------------
# Embedding, mirroring wenda's Embedder


def plan_batches(
    lengths: list[int], token_budget: int = TOKEN_BUDGET, max_inputs: int = MAX_INPUTS
) -> list[list[int]]:
    """src/embedding/batching.rs `plan_batches`: longest first (stable), capped padded tokens."""
    batches: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if batches:
            batch = batches[-1]
            longest = max(lengths[batch[0]], 1)
            if len(batch) < max_inputs and (len(batch) + 1) * longest <= token_budget:
                batch.append(index)
                continue
        batches.append([index])
    return batches


class OrtEmbedder:
    def __init__(self, path: Path, tokenizer: Tokenizer, cfg: ModelConfig, threads: int, spin: bool) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ORT's worker threads busy-wait between ops by default; on a loaded machine that costs
        # more than it saves, so both settings are timed and the better one counts.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizer
        self.cfg = cfg

    def embed(self, prompt: str, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """Unit vectors in input order and each input's token count (as Embedder::embed)."""
        encodings = self.tokenizer.encode_batch_fast([prompt + t for t in texts], add_special_tokens=True)
        ids = [e.ids for e in encodings]
        lengths = [len(i) for i in ids]
        out = np.empty((len(texts), self.cfg.hidden), np.float32)
        for batch in plan_batches(lengths):
            seq = max(1, *(lengths[i] for i in batch))
            input_ids = np.full((len(batch), seq), self.cfg.pad_id, np.int64)
            mask = np.zeros((len(batch), seq), np.int64)
            for row, i in enumerate(batch):
                input_ids[row, : lengths[i]] = ids[i]
                mask[row, : lengths[i]] = 1
            feeds = {
                "input_ids": input_ids,
                "attention_mask": mask,
                "token_type_ids": np.zeros_like(input_ids),
            }
            out[batch] = self.session.run(["sentence_embedding"], feeds)[0]
        return out, lengths


# ---------------------------------------------------------------------------------------------
# Parity and workload


def lowest_cosine(embedder: OrtEmbedder, fixture: dict) -> float:
    """Lowest cosine against the reference; fixture texts already carry their prompts."""
    cases = fixture["cases"]
    for case in cases:
        got = embedder.tokenizer.encode_batch_fast([case["text"]], add_special_tokens=True)[0].ids
        if got != case["token_ids"]:
            sys.exit(
                f"tokenizer mismatch on {case['text'][:40]!r}: {got[:12]}... vs {case['token_ids'][:12]}..."
            )
    # One call: the cases share padded batches, so the mask path is exercised too.
    vectors, _ = embedder.embed("", [c["text"] for c in cases])
    reference = np.array([c["embedding"] for c in cases], np.float64)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    ours = vectors.astype(np.float64)
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    return float(np.min(np.sum(ours * reference, axis=1)))


def read_dataset(path: Path) -> tuple[list[str], list[str]]:
    """src/squad.rs: distinct contexts in first-occurrence order, and every question in file order."""
    data = json.loads(path.read_text())
    contexts: list[str] = []
    seen: set[str] = set()
    questions: list[str] = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            if paragraph["context"] not in seen:
                seen.add(paragraph["context"])
                contexts.append(paragraph["context"])
            questions.extend(qa["question"] for qa in paragraph["qas"])
    return contexts, questions


@dataclass
class Result:
    variant: str
    spin: bool
    file_mb: float
    cosine: float
    q_tokens: float = 0.0
    q_p50_ms: float = 0.0
    q_p90_ms: float = 0.0
    q_mean_ms: float = 0.0
    passages: int = 0
    passage_tokens: int = 0
    passage_s: float = 0.0
    tokens_per_s: float = 0.0
    passages_per_s: float = 0.0
    batches: list[int] = field(default_factory=list)


def time_queries(embedder: OrtEmbedder, questions: list[str], result: Result) -> None:
    """embed.rs `query_latency`: 5 warm-ups, then each question alone, tokenization included."""
    prompt = embedder.cfg.query_prompt
    for q in questions[:WARMUP_QUERIES]:
        embedder.embed(prompt, [q])
    times, tokens = [], 0
    for q in questions:
        started = time.perf_counter()
        _, lengths = embedder.embed(prompt, [q])
        times.append(time.perf_counter() - started)
        tokens += lengths[0]
    times.sort()

    def at(p: float) -> float:
        return times[math.floor((len(times) - 1) * p + 0.5)] * 1e3  # Rust's round(): half away from 0

    result.q_tokens = tokens / len(questions)
    result.q_p50_ms, result.q_p90_ms = at(0.5), at(0.9)
    result.q_mean_ms = statistics.fmean(times) * 1e3


def time_passages(embedder: OrtEmbedder, passages: list[str], result: Result) -> None:
    """embed.rs `throughput`: one embed call over all passages, tokenization included."""
    started = time.perf_counter()
    _, lengths = embedder.embed(embedder.cfg.passage_prompt, passages)
    result.passage_s = time.perf_counter() - started
    result.passages = len(passages)
    result.passage_tokens = sum(lengths)
    result.tokens_per_s = result.passage_tokens / result.passage_s
    result.passages_per_s = len(passages) / result.passage_s
    result.batches = [len(b) for b in plan_batches(lengths)]


# ---------------------------------------------------------------------------------------------
# Commands


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench(args: argparse.Namespace) -> None:
    model_dir = Path(args.model_dir)
    cfg = ModelConfig.read(model_dir)
    tokenizer = load_tokenizer(model_dir, cfg.max_tokens)
    fixture = json.loads(Path(args.fixture).read_text())
    contexts, all_questions = read_dataset(Path(args.dataset))
    questions = all_questions[: args.queries]
    passages = contexts[: args.passages]
    unknown = set(args.variants.split(",")) - set(ALL_VARIANTS)
    if unknown:
        sys.exit(f"unknown variants {sorted(unknown)}; choose from {ALL_VARIANTS}")
    wanted = [v for v in ALL_VARIANTS if v in args.variants.split(",")]
    spins = {"on": [True], "off": [False], "both": [True, False]}[args.spin]
    print(
        f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, opset {OPSET}; "
        f"{args.threads} intra-op threads; "
        f"dataset {args.dataset}: {len(all_questions)} questions (timing {len(questions)}), "
        f"{len(contexts)} contexts (embedding {len(passages)})"
    )
    paths = build_variants(model_dir, cfg, Path(args.work_dir), wanted)
    results: list[Result] = []
    print(
        f"{'variant':<31} {'MB':>5} {'min cos':>9} {'q tokens':>8} {'q p50 ms':>9} {'q p90 ms':>9} "
        f"{'q mean':>7} {'tokens/s':>9} {'psg/s':>7}"
    )
    for name, path in paths.items():
        for spin in spins:
            label = f"{name} spin={'on' if spin else 'off'}"
            embedder = OrtEmbedder(path, tokenizer, cfg, args.threads, spin)
            result = Result(label, spin, path.stat().st_size / 2**20, lowest_cosine(embedder, fixture))
            if "int8" not in name and result.cosine < F32_MIN_COSINE:
                sys.exit(f"{label}: lowest cosine {result.cosine:.6f} < {F32_MIN_COSINE}: the graph is wrong")
            if "int8" not in name and spin == spins[0]:
                print(
                    f"  {name} parity: same token ids, lowest cosine {result.cosine:.6f} >= {F32_MIN_COSINE} "
                    f"over {len(fixture['cases'])} reference texts"
                )
            time_queries(embedder, questions, result)
            time_passages(embedder, passages, result)
            print(
                f"{label:<31} {result.file_mb:>5.0f} {result.cosine:>9.6f} {result.q_tokens:>8.1f} "
                f"{result.q_p50_ms:>9.2f} {result.q_p90_ms:>9.2f} {result.q_mean_ms:>7.2f} "
                f"{result.tokens_per_s:>9.0f} {result.passages_per_s:>7.2f}",
                flush=True,
            )
            results.append(result)
            del embedder
    first = results[0]
    print(
        f"passages: {first.passages} contexts, {first.passage_tokens} tokens, {len(first.batches)} batches "
        f"(sizes {first.batches})"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "cpu": cpu_model(),
                    "threads": args.threads,
                    "onnxruntime": ort.__version__,
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
        )


def parse_wenda(text: str) -> dict | None:
    """Picks wenda's row and its full-run line out of `wenda-bench embed` output."""
    row, full = None, None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 8 and parts[0] == "wenda":
            row = parts
        elif line.startswith("wenda, ") and "tokens/s" in line:
            full = line
    if row is None or full is None:
        return None
    words = full.replace(",", " ").split()
    return {
        "q_tokens": float(row[1]),
        "q_p50_ms": float(row[2]),
        "q_p90_ms": float(row[3]),
        "q_mean_ms": float(row[4]),
        "q_min_ms": float(row[5]),
        "tokens_per_s": float(words[words.index("tokens/s") - 1]),
        "passages_per_s": float(words[words.index("passages/s") - 1]),
    }


def wenda_cosine(binary: str, fixture: dict) -> float:
    """Lowest cosine of `wenda embed` against the reference, on the same fixture as ORT's."""
    cases = fixture["cases"]
    prompts = {"query": "query: ", "passage": "passage: "}
    vectors: dict[int, list[float]] = {}
    for role, prompt in prompts.items():
        members = [i for i, c in enumerate(cases) if c["text"].startswith(prompt)]
        texts = [cases[i]["text"][len(prompt) :] for i in members]
        out = subprocess.run(
            [binary, "embed", "--role", role, *texts], check=True, capture_output=True, text=True
        )
        lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        for i, line in zip(members, lines, strict=True):
            vectors[i] = line["embedding"]
    if len(vectors) != len(cases):
        sys.exit("a fixture text carries neither the query nor the passage prompt")
    ours = np.array([vectors[i] for i in range(len(cases))], np.float64)
    reference = np.array([c["embedding"] for c in cases], np.float64)
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    return float(np.min(np.sum(ours * reference, axis=1)))


def table(args: argparse.Namespace) -> None:
    """Prints the side-by-side table (Markdown) from the ORT results and wenda's output."""
    ort_run = json.loads(Path(args.ort_json).read_text())
    rows = [
        (
            f"ORT {r['variant']}",
            r["q_p50_ms"],
            r["q_p90_ms"],
            r["tokens_per_s"],
            r["passages_per_s"],
            f"{r['cosine']:.6f}",
        )
        for r in ort_run["results"]
    ]
    best_latency = min(rows, key=lambda r: r[1])
    best_throughput = max(rows, key=lambda r: r[3])
    wenda = parse_wenda(Path(args.wenda_output).read_text()) if args.wenda_output else None
    if wenda:
        cosine = "-"
        if args.wenda_binary:
            cosine = f"{wenda_cosine(args.wenda_binary, json.loads(Path(args.fixture).read_text())):.6f}"
        rows.append(
            (
                f"wenda ({args.kernels})",
                wenda["q_p50_ms"],
                wenda["q_p90_ms"],
                wenda["tokens_per_s"],
                wenda["passages_per_s"],
                cosine,
            )
        )
    print(
        f"CPU: {ort_run['cpu']}; {ort_run['threads']} threads; onnxruntime {ort_run['onnxruntime']}; "
        f"wenda kernels: {args.kernels}"
    )
    print()
    print("| variant | question p50 ms | p90 ms | passages tokens/s | passages/s | min cosine vs reference |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, p50, p90, tps, pps, cos in rows:
        print(f"| {name} | {p50:.2f} | {p90:.2f} | {tps:.0f} | {pps:.2f} | {cos} |")
    print()
    print(
        f"Strongest ORT: latency {best_latency[0]} ({best_latency[1]:.2f} ms p50, "
        f"min cosine {best_latency[5]}), throughput {best_throughput[0]} "
        f"({best_throughput[3]:.0f} tokens/s, min cosine {best_throughput[5]})"
    )
    if wenda:
        print(
            f"wenda / strongest ORT (>1: wenda better): question p50 "
            f"{best_latency[1] / wenda['q_p50_ms']:.2f}x, passage tokens/s "
            f"{wenda['tokens_per_s'] / best_throughput[3]:.2f}x"
        )
    else:
        print("wenda: no figures (binary missing or its output not recognised)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="build the ORT variants, check parity, time the workload")
    b.add_argument("--model-dir", default="models/intfloat/multilingual-e5-small")
    b.add_argument("--fixture", default="../shared/fixtures/e5_reference.json")
    b.add_argument("--dataset", default="../shared/data/cmrc2018_dev.json")
    b.add_argument("--queries", type=int, default=300)
    b.add_argument("--passages", type=int, default=200)
    b.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    b.add_argument(
        "--variants", default=",".join(ALL_VARIANTS), help=f"comma-separated subset of {ALL_VARIANTS}"
    )
    b.add_argument(
        "--spin", choices=["on", "off", "both"], default="both", help="ORT intra-op thread spinning"
    )
    b.add_argument("--work-dir", default="target/ort-venv/models", help="where the .onnx files are written")
    b.add_argument("--json", help="also write the results here")
    t = sub.add_parser("table", help="print the side-by-side table")
    t.add_argument("--ort-json", required=True)
    t.add_argument("--wenda-output", help="captured stdout of `wenda-bench embed`")
    t.add_argument("--kernels", default="unknown")
    t.add_argument("--wenda-binary", help="also check `wenda embed` against the reference")
    t.add_argument("--fixture", default="../shared/fixtures/e5_reference.json")
    args = parser.parse_args()
    bench(args) if args.command == "bench" else table(args)


if __name__ == "__main__":
    main()
