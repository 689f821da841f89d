//! Subcommands of the `wenda` binary, and the options they share.

pub mod ask;
pub mod data;
pub mod embed;
pub mod eval;
pub mod model;
mod model_args;
pub mod open;
pub mod query;
pub mod serve;

use wenda::embedding::Role;
use wenda::search::Mode;

pub use model_args::ModelArgs;

/// `--mode` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeArg {
    /// By meaning: cosine of embeddings.
    Dense,
    /// By shared words: BM25.
    Lexical,
    /// Both, blended.
    Hybrid,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Dense => Self::Dense,
            ModeArg::Lexical => Self::Lexical,
            ModeArg::Hybrid => Self::Hybrid,
        }
    }
}

/// `--role` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleArg {
    /// A question or search text.
    Query,
    /// Text that is indexed and retrieved.
    Passage,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Query => Self::Query,
            RoleArg::Passage => Self::Passage,
        }
    }
}
