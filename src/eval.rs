//! Retrieval quality: question sets with known answers, and the metrics over ranked results.
//!
//! A question is answered well when a relevant passage ranks high. Relevance is judged per
//! passage: by id (a piece of a split record counts as the record, through its `source_id`), or
//! by an expected substring of the text, which keeps hand-written sets readable and robust to
//! re-chunking.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::corpus::Passage;

/// A question and how to recognise the passages that answer it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalQuestion {
    pub question: String,
    /// Ids of relevant passages or records.
    #[serde(default)]
    pub expected_ids: Vec<String>,
    /// Texts of which any one, found in a passage, makes it relevant.
    #[serde(default)]
    pub expected_substrings: Vec<String>,
}

impl EvalQuestion {
    pub fn is_relevant(&self, passage: &Passage) -> bool {
        let record = passage.source_id.as_ref().unwrap_or(&passage.id).as_str();
        self.expected_ids
            .iter()
            .any(|id| id == passage.id.as_str() || id == record)
            || self
                .expected_substrings
                .iter()
                .any(|s| passage.text.contains(s.as_str()))
    }
}

/// Why a question file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum QuestionsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {problem}")]
    Line {
        path: String,
        line: usize,
        problem: String,
    },
}

/// Reads JSON lines of `{"question", "expected_ids"?, "expected_substrings"?}`; blank lines and
/// lines starting with `//` are skipped.
pub fn read_questions(path: &Path) -> Result<Vec<EvalQuestion>, QuestionsError> {
    let text = std::fs::read_to_string(path).map_err(|source| QuestionsError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut questions = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let problem = |problem: String| QuestionsError::Line {
            path: path.display().to_string(),
            line: index + 1,
            problem,
        };
        let question: EvalQuestion =
            serde_json::from_str(line).map_err(|e| problem(e.to_string()))?;
        if question.expected_ids.is_empty() && question.expected_substrings.is_empty() {
            return Err(problem(
                "give expected_ids or expected_substrings, or nothing can be judged".into(),
            ));
        }
        questions.push(question);
    }
    Ok(questions)
}

/// Recall at 1, 5 and 10 and MRR at 10, accumulated question by question.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub questions: usize,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub recall_at_10: f64,
    pub mrr_at_10: f64,
}

impl Metrics {
    /// Adds a question whose first relevant result is at `rank` (1-based), if any.
    pub fn add(&mut self, rank: Option<usize>) {
        let n = self.questions as f64;
        let update = |mean: f64, value: f64| (mean * n + value) / (n + 1.0);
        let hit = |k: usize| f64::from(u8::from(rank.is_some_and(|r| r <= k)));
        self.recall_at_1 = update(self.recall_at_1, hit(1));
        self.recall_at_5 = update(self.recall_at_5, hit(5));
        self.recall_at_10 = update(self.recall_at_10, hit(10));
        let reciprocal = rank.filter(|&r| r <= 10).map_or(0.0, |r| 1.0 / r as f64);
        self.mrr_at_10 = update(self.mrr_at_10, reciprocal);
        self.questions += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_follow_their_definitions() {
        let mut metrics = Metrics::default();
        for rank in [Some(1), Some(3), Some(10), None] {
            metrics.add(rank);
        }
        assert_eq!(metrics.questions, 4);
        assert_eq!(metrics.recall_at_1, 0.25);
        assert_eq!(metrics.recall_at_5, 0.5);
        assert_eq!(metrics.recall_at_10, 0.75);
        let mrr = (1.0 + 1.0 / 3.0 + 0.1) / 4.0;
        assert!((metrics.mrr_at_10 - mrr).abs() < 1e-12);
    }

    #[test]
    fn question_files_must_say_what_is_relevant() {
        let dir = std::env::temp_dir().join(format!("wenda-eval-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("q.jsonl");
        std::fs::write(
            &path,
            "// comment\n{\"question\": \"a\", \"expected_substrings\": [\"x\"]}\n\n",
        )
        .unwrap();
        assert_eq!(read_questions(&path).unwrap().len(), 1);
        std::fs::write(&path, "{\"question\": \"a\"}\n").unwrap();
        let error = read_questions(&path).unwrap_err().to_string();
        assert!(error.contains(":1:"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
