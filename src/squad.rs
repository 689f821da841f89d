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
    /// The dataset's own id for it (`qas[].id`), empty when it gives none.
    pub id: String,
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
    #[serde(default)]
    id: String,
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
    #[error("{path}:{line}: not a translation `{{\"id\", \"question\"}}`: {message}")]
    Translation {
        path: String,
        line: usize,
        message: String,
    },
}

/// One line of a translations file.
#[derive(Deserialize)]
struct Translation {
    id: String,
    question: String,
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

    /// The same contexts with only the questions that `path` translates, asked in its words.
    /// `path` holds JSON lines `{"id", "question"}` naming questions by their dataset id (lines
    /// starting with `//` are comments): it makes a question set in another language over the
    /// same passages, such as English questions over CMRC's Chinese text.
    pub fn translated(mut self, path: &Path) -> Result<Self, DatasetError> {
        let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut translations = HashMap::new();
        for (line, record) in text.lines().enumerate() {
            let record = record.trim();
            if record.is_empty() || record.starts_with("//") {
                continue;
            }
            let fail = |message: String| DatasetError::Translation {
                path: path.display().to_string(),
                line: line + 1,
                message,
            };
            let Translation { id, question } =
                serde_json::from_str(record).map_err(|e| fail(e.to_string()))?;
            if !self.questions.iter().any(|q| q.id == id) {
                return Err(fail(format!("the dataset has no question {id:?}")));
            }
            translations.insert(id, question);
        }
        self.questions
            .retain_mut(|q| match translations.remove(&q.id) {
                Some(text) => {
                    q.text = text;
                    true
                }
                None => false,
            });
        Ok(self)
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
                    id: qa.id,
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

    #[test]
    fn translations_replace_the_questions_they_name_and_drop_the_others() {
        let json = r#"{"data": [{"paragraphs": [
            {"context": "甲", "qas": [{"id": "q1", "question": "甲是什么？"}, {"id": "q2", "question": "乙？"}]}
        ]}]}"#;
        let file: File = serde_json::from_str(json).unwrap();
        let d = Dataset::from_paragraphs(file.data.into_iter().flat_map(|a| a.paragraphs));
        let path = std::env::temp_dir().join(format!("wenda-translations-{}", std::process::id()));
        std::fs::write(
            &path,
            "// English\n{\"id\": \"q1\", \"question\": \"What is A?\"}\n",
        )
        .unwrap();
        let translated = d.clone().translated(&path).unwrap();
        assert_eq!(translated.contexts, vec!["甲"]);
        assert_eq!(translated.questions.len(), 1);
        assert_eq!(translated.questions[0].text, "What is A?");

        std::fs::write(&path, "{\"id\": \"q9\", \"question\": \"?\"}\n").unwrap();
        let error = d.translated(&path).unwrap_err().to_string();
        assert!(error.contains(":1:") && error.contains("q9"), "{error}");
        std::fs::remove_file(&path).unwrap();
    }
}
