//! wenda (问答): multilingual passage retrieval.
//!
//! Data flows one way through the stages, one module each:
//! [`embedding`] (text → vectors) is used by everything downstream; [`squad`] reads public
//! benchmark datasets.

pub mod embedding;
pub mod squad;
