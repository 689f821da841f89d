//! Any BERT-family sentence-model directory loads the same way, with no download: tiny randomly
//! initialised BERT and XLM-RoBERTa checkpoints are written to disk in the Hugging Face layout
//! (config.json, tokenizer.json, model.safetensors, 1_Pooling, config_sentence_transformers.json)
//! and resolved by path.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use serde_json::json;
use wenda::embedding::{Backend, BatchLimits, Embedder, ModelLocator, ModelOrigin, Pooling, Role};

const VOCAB: &[&str] = &[
    "<s>",
    "<pad>",
    "</s>",
    "<unk>",
    "query",
    ":",
    "passage",
    "hello",
    "world",
    "retrieval",
    "问",
    "答",
];

fn config(model_type: &str) -> serde_json::Value {
    json!({
        "model_type": model_type,
        "vocab_size": VOCAB.len(),
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 32,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        // RoBERTa-style positions start after the padding index: 2 + 64 usable positions.
        "max_position_embeddings": if model_type == "bert" { 64 } else { 66 },
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
    })
}

fn tokenizer() -> serde_json::Value {
    let special = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    let token = |id: &str, type_id: u32| json!({"SpecialToken": {"id": id, "type_id": type_id}});
    let sequence = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    let vocab: serde_json::Map<String, serde_json::Value> = VOCAB
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), json!(i)))
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0, "<s>"), special(1, "<pad>"), special(2, "</s>"), special(3, "<unk>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [token("<s>", 0), sequence("A", 0), token("</s>", 0)],
            "pair": [token("<s>", 0), sequence("A", 0), token("</s>", 0), sequence("B", 1), token("</s>", 1)],
            "special_tokens": {
                "<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]},
            },
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    })
}

/// Writes a tiny random model of `model_type` with the given pooling into a fresh directory.
fn write_model(name: &str, model_type: &str, pooling: Pooling) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wenda-model-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    let config = config(model_type);
    let write = |file: &str, value: &serde_json::Value| {
        std::fs::write(dir.join(file), serde_json::to_string_pretty(value).unwrap()).unwrap()
    };
    write("config.json", &config);
    write("tokenizer.json", &tokenizer());
    write(
        "1_Pooling/config.json",
        &json!({"pooling_mode_cls_token": pooling == Pooling::Cls,
                "pooling_mode_mean_tokens": pooling == Pooling::Mean}),
    );
    write(
        "config_sentence_transformers.json",
        &json!({"prompts": {"query": "query: ", "passage": "passage: "}}),
    );
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    // Building candle-transformers' model registers (and randomly initialises) every weight.
    if model_type == "bert" {
        let cfg = serde_json::from_value(config).unwrap();
        candle_transformers::models::bert::BertModel::load(vb, &cfg).unwrap();
    } else {
        let cfg = serde_json::from_value(config).unwrap();
        candle_transformers::models::xlm_roberta::XLMRobertaModel::new(&cfg, vb).unwrap();
    }
    varmap.save(dir.join("model.safetensors")).unwrap();
    dir
}

fn load(dir: &Path, backend: Backend) -> Embedder {
    let locator = ModelLocator::new(std::env::temp_dir().join("wenda-no-project-models"));
    let files = locator.resolve(dir.to_str().unwrap()).unwrap();
    assert_eq!(files.origin, ModelOrigin::LocalDirectory);
    Embedder::load(&files, backend, BatchLimits::default()).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn check_embeds(embedder: &Embedder) {
    let texts = ["hello world", "retrieval", "问 答 hello world retrieval"];
    let batch = embedder.embed(Role::Passage, &texts).unwrap();
    for (text, embedding) in texts.iter().zip(&batch) {
        let norm: f32 = embedding.vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "not normalised: {norm}");
        assert!(!embedding.truncated);
        let alone = embedder.embed_one(Role::Passage, text).unwrap();
        assert!(cosine(&alone.vector, &embedding.vector) > 0.99999);
    }
    // The declared prompts are applied by role: <s> query : hello </s>.
    assert_eq!(
        embedder.token_ids(Role::Query, "hello").unwrap(),
        [0, 4, 5, 7, 2]
    );
    assert_eq!(
        embedder.token_ids(Role::Passage, "hello").unwrap(),
        [0, 6, 5, 7, 2]
    );
}

#[test]
fn bert_directory_loads_with_declared_pooling_and_prompts() {
    for pooling in [Pooling::Mean, Pooling::Cls] {
        let dir = write_model(&format!("bert-{pooling:?}"), "bert", pooling);
        let native = load(&dir, Backend::Native);
        let reference = load(&dir, Backend::CandleTransformers);
        assert_eq!(native.config().pooling, pooling);
        assert_eq!(native.dimensions(), 16);
        check_embeds(&native);
        for text in ["hello world", "问 答 retrieval"] {
            let a = native.embed_one(Role::Query, text).unwrap();
            let b = reference.embed_one(Role::Query, text).unwrap();
            assert!(
                cosine(&a.vector, &b.vector) > 0.9999,
                "{pooling:?}: backends disagree"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn xlm_roberta_directory_loads_and_truncates_at_its_window() {
    let dir = write_model("xlmr", "xlm-roberta", Pooling::Mean);
    let embedder = load(&dir, Backend::Native);
    // 66 position rows minus the two before RoBERTa's first position.
    assert_eq!(embedder.config().max_tokens, 64);
    check_embeds(&embedder);
    let long = vec!["hello"; 100].join(" ");
    let embedding = embedder.embed_one(Role::Passage, &long).unwrap();
    assert!(embedding.truncated);
    assert_eq!(embedding.tokens, 64);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The fingerprint is kept beside the weights and reused while the files are unchanged; any
/// change to a file (its size or modification time) makes it computed again, and a stale or
/// damaged record is never believed.
#[test]
fn the_model_fingerprint_is_cached_beside_the_weights_until_a_file_changes() {
    use wenda::embedding::fingerprint::CACHE_FILE;
    use wenda::embedding::ModelFingerprint;
    let dir = write_model("fingerprint", "bert", Pooling::Mean);
    let locator = ModelLocator::new(std::env::temp_dir().join("wenda-no-project-models"));
    let files = locator.resolve(dir.to_str().unwrap()).unwrap();
    let embedder = Embedder::load(&files, Backend::Native, BatchLimits::default()).unwrap();
    let computed = ModelFingerprint::of(&files, &embedder).unwrap();
    assert_eq!(
        ModelFingerprint::cached(&files, &embedder).unwrap(),
        computed
    );
    let record = dir.join(CACHE_FILE);
    assert!(record.exists());

    // A record that names another fingerprint under the same key is what is used: the cache
    // is trusted while the files are unchanged...
    let text = std::fs::read_to_string(&record).unwrap();
    let planted = text.replace(&computed.hex(), &"ab".repeat(32));
    std::fs::write(&record, &planted).unwrap();
    assert_eq!(
        ModelFingerprint::cached(&files, &embedder).unwrap().hex(),
        "ab".repeat(32)
    );
    // ...and not once a file has changed: the tokenizer gains a byte.
    let tokenizer = std::fs::read_to_string(&files.tokenizer).unwrap();
    std::fs::write(&files.tokenizer, format!("{tokenizer}\n")).unwrap();
    let changed = ModelFingerprint::cached(&files, &embedder).unwrap();
    assert_eq!(changed, ModelFingerprint::of(&files, &embedder).unwrap());
    assert_ne!(
        changed, computed,
        "the tokenizer file is part of the fingerprint"
    );
    // A damaged record is ignored and replaced.
    std::fs::write(&record, "{not json").unwrap();
    assert_eq!(
        ModelFingerprint::cached(&files, &embedder).unwrap(),
        changed
    );
    std::fs::remove_dir_all(dir).unwrap();
}
