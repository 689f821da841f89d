//! wenda (问答): multilingual passage retrieval.
//!
//! Data flows one way through the stages, one module each: [`corpus`] (files → passages),
//! [`embedding`] (text → vectors), [`index`] (vectors → nearest), [`search`] (question → ranked
//! passages) and [`http`] (the wire format). [`squad`] reads public benchmark datasets and
//! [`eval`] scores rankings against known answers; [`cpu`] says which kernels the machine runs.

pub mod corpus;
pub mod cpu;
pub mod embedding;
pub mod eval;
pub mod http;
pub mod index;
pub mod search;
pub mod service;
pub mod squad;
pub mod store;
