//! `wenda embed`: print embeddings of texts, one JSON object per line.

use super::{ModelArgs, RoleArg};

#[derive(clap::Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Embed the texts as questions or as passages (decides the model's prompt).
    #[arg(long, value_enum, default_value = "query")]
    role: RoleArg,
    /// Texts to embed.
    #[arg(required = true)]
    texts: Vec<String>,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let embedder = args.model.load()?;
    for (text, embedding) in args
        .texts
        .iter()
        .zip(embedder.embed(args.role.into(), &args.texts)?)
    {
        let line = serde_json::json!({
            "text": text,
            "tokens": embedding.tokens,
            "truncated": embedding.truncated,
            "embedding": embedding.vector,
        });
        println!("{line}");
    }
    Ok(())
}
