//! wenda (问答): multilingual passage retrieval.
//!
//! Modules, in the order data flows through them:
//!
//! - [`corpus`]: files → documents → passages.
//! - [`embedding`]: text → vectors, with wenda's own encoder.
//! - [`store`]: documents, passages and vectors kept durably (SQLite or PostgreSQL).
//! - [`index`]: vectors and terms → the nearest passages.
//! - [`search`]: a question → ranked passages, with highlights and a context block.
//! - [`answer`]: ranked passages → the sentences that answer the question, with citations.
//! - [`service`]: the application service every transport calls, [`service::Service`].
//! - [`http`]: the HTTP API, its wire format, the MCP and Dify endpoints, API keys.
//!
//! Beside the flow:
//!
//! - [`squad`]: public benchmark datasets, read for evaluation.
//! - [`eval`]: rankings scored against known answers.
//! - [`cpu`]: which kernels the machine runs.
//! - [`llm`]: the OpenAI-compatible LLM that writes generative answers.

pub mod answer;
pub mod corpus;
pub mod cpu;
pub mod embedding;
pub mod eval;
pub mod http;
pub mod index;
pub mod llm;
pub mod search;
pub mod service;
pub mod squad;
pub mod store;
