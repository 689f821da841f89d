//! Reads SQuAD-format datasets (such as CMRC 2018) into contexts and the questions asked of them.
//!
//! Used as a retrieval benchmark: every context is a passage and every question's one relevant
//! passage is its own context. Identical contexts are merged so each passage appears once.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

/// A question, the index of its context in [`Dataset::contexts`], and its gold answers (spans
/// of that context; several annotators may give different ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub text: String,
    pub context: usize,
    pub answers: Vec<String>,
}

/// Distinct contexts and every question, in file order.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub contexts: Vec<String>,
    pub questions: Vec<Question>,
}

#[derive(Deserialize)]
struct File {
    data: Vec<Article>,
}
#[derive(Deserialize)]
struct Article {
    paragraphs: Vec<Paragraph>,
}
#[derive(Deserialize)]
struct Paragraph {
    context: String,
    qas: Vec<Qa>,
}
#[derive(Deserialize)]
struct Qa {
    question: String,
    #[serde(default)]
    answers: Vec<Answer>,
}
#[derive(Deserialize)]
struct Answer {
    text: String,
}

/// Why a dataset could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a SQuAD-format file: {source}")]
    Format {
        path: String,
        source: serde_json::Error,
    },
}

impl Dataset {
    /// Reads a SQuAD-format JSON file.
    pub fn read(path: &Path) -> Result<Self, DatasetError> {
        let bytes = std::fs::read(path).map_err(|source| DatasetError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let file: File = serde_json::from_slice(&bytes).map_err(|source| DatasetError::Format {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::from_paragraphs(
            file.data.into_iter().flat_map(|a| a.paragraphs),
        ))
    }

    fn from_paragraphs(paragraphs: impl Iterator<Item = Paragraph>) -> Self {
        let mut dataset = Self::default();
        let mut index_of: HashMap<String, usize> = HashMap::new();
        for paragraph in paragraphs {
            let next = dataset.contexts.len();
            let context = *index_of.entry(paragraph.context.clone()).or_insert(next);
            if context == next {
                dataset.contexts.push(paragraph.context);
            }
            dataset
                .questions
                .extend(paragraph.qas.into_iter().map(|qa| Question {
                    text: qa.question,
                    context,
                    answers: qa.answers.into_iter().map(|a| a.text).collect(),
                }));
        }
        dataset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_contexts_are_merged_and_questions_point_at_them() {
        let json = r#"{"data": [{"paragraphs": [
            {"context": "甲", "qas": [{"question": "q1"}]},
            {"context": "乙", "qas": [{"question": "q2"}]},
            {"context": "甲", "qas": [{"question": "q3"}, {"question": "q4"}]}
        ]}]}"#;
        let file: File = serde_json::from_str(json).unwrap();
        let d = Dataset::from_paragraphs(file.data.into_iter().flat_map(|a| a.paragraphs));
        assert_eq!(d.contexts, vec!["甲", "乙"]);
        let targets: Vec<usize> = d.questions.iter().map(|q| q.context).collect();
        assert_eq!(targets, vec![0, 1, 0, 0]);
    }
}
