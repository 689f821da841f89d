//! wenda (问答): multilingual passage retrieval.
//!
//! Data flows one way through the stages, one module each: [`corpus`] (files → passages),
//! [`embedding`] (text → vectors). [`squad`] reads public benchmark datasets.

pub mod corpus;
pub mod embedding;
pub mod squad;
