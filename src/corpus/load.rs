//! Loads the files and directories a user names, reporting what it has to skip.
//!
//! Directories are walked recursively in sorted order, so that the corpus and its generated ids
//! do not depend on the file system's listing order. Within them, `.txt`, `.md` and `.jsonl`
//! files are loaded and other files are counted as ignored; hidden entries (`.git`, editor
//! files) are passed over, and symbolic links to directories are not followed, to avoid cycles.
//! A file named explicitly must have one of those extensions. A bad file, line or duplicate id
//! costs only itself: the rest still loads.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::corpus::problem::{Problem, ProblemKind};
use crate::corpus::{document, jsonl, ChunkConfig, Document, Format, Passage, PassageId};

/// Everything a load produced.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub documents: Vec<Document>,
    pub passages: Vec<Passage>,
    /// What was skipped, and why.
    pub problems: Vec<Problem>,
    /// Files in the directories walked that are not of a supported type.
    pub ignored_files: usize,
}

/// Loads `paths`, each a file or a directory, into passages sized by `config`.
///
/// Document paths (and so generated passage ids) are relative to the directory given, or are
/// the file name for a file given on its own.
pub fn load<P: AsRef<Path>>(paths: &[P], config: &ChunkConfig<'_>) -> LoadReport {
    let mut loader = Loader {
        config,
        report: LoadReport::default(),
        first_seen: HashMap::new(),
    };
    for path in paths {
        loader.load_path(path.as_ref());
    }
    let report = loader.report;
    tracing::info!(
        documents = report.documents.len(),
        passages = report.passages.len(),
        problems = report.problems.len(),
        ignored_files = report.ignored_files,
        "corpus loaded"
    );
    report
}

/// The kinds of file the corpus reads.
#[derive(Debug, Clone, Copy)]
enum FileKind {
    Text,
    Jsonl,
}

impl FileKind {
    fn of(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "txt" | "md" => Some(Self::Text),
            "jsonl" => Some(Self::Jsonl),
            _ => None,
        }
    }
}

struct Loader<'a> {
    config: &'a ChunkConfig<'a>,
    report: LoadReport,
    /// Where each passage id was first loaded from: document path and line.
    first_seen: HashMap<PassageId, (String, usize)>,
}

impl Loader<'_> {
    fn load_path(&mut self, path: &Path) {
        match fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() => self.walk(path, path),
            Ok(_) => match FileKind::of(path) {
                Some(kind) => {
                    let name = path.file_name().unwrap_or(path.as_os_str());
                    self.load_file(path, &name.to_string_lossy(), kind);
                }
                None => self.problem(path, None, ProblemKind::UnsupportedExtension),
            },
            Err(error) => self.problem(path, None, ProblemKind::Unreadable(error.to_string())),
        }
    }

    fn walk(&mut self, root: &Path, directory: &Path) {
        // `file_type` does not follow symbolic links, so linked directories are not entered.
        let entries = fs::read_dir(directory).and_then(|entries| {
            entries
                .map(|entry| {
                    let entry = entry?;
                    Ok((entry.path(), entry.file_type()?.is_dir()))
                })
                .collect::<std::io::Result<Vec<(PathBuf, bool)>>>()
        });
        let mut entries = match entries {
            Ok(entries) => entries,
            Err(error) => {
                return self.problem(directory, None, ProblemKind::Unreadable(error.to_string()))
            }
        };
        entries.sort();
        for (path, is_dir) in entries {
            let hidden = path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if is_dir {
                self.walk(root, &path);
            } else if let Some(kind) = FileKind::of(&path) {
                self.load_file(&path, &relative_path(root, &path), kind);
            } else {
                self.report.ignored_files += 1;
            }
        }
    }

    /// Loads the file at `path`; `relative` is its path relative to its root.
    fn load_file(&mut self, path: &Path, relative: &str, kind: FileKind) {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                return self.problem(path, None, ProblemKind::Unreadable(error.to_string()))
            }
        };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => {
                let offset = error.utf8_error().valid_up_to();
                let line = error.as_bytes()[..offset]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1;
                return self.problem(path, Some(line), ProblemKind::NotUtf8 { offset });
            }
        };
        if text.trim_start_matches('\u{feff}').trim().is_empty() {
            return self.problem(path, None, ProblemKind::Empty);
        }
        let (format, articles, groups) = match kind {
            FileKind::Text => {
                let document = document::parse(relative, &text, self.config);
                (
                    document.format,
                    Some(document.articles.len()),
                    document.passages,
                )
            }
            FileKind::Jsonl => {
                let document = jsonl::parse(relative, &text, self.config);
                for (line, kind) in document.problems {
                    self.problem(path, Some(line), kind);
                }
                (Format::Jsonl, None, document.records)
            }
        };
        let mut loaded_groups = 0;
        let mut passages = 0;
        for group in groups {
            if let Some(count) = self.admit(path, group) {
                loaded_groups += 1;
                passages += count;
            }
        }
        tracing::debug!(path = %path.display(), passages, "loaded");
        self.report.documents.push(Document {
            path: relative.to_owned(),
            format,
            // A JSON-lines record counts as an article.
            articles: articles.unwrap_or(loaded_groups),
            passages,
        });
    }

    /// Adds the passages cut from one paragraph group or record, all or none: a record whose id
    /// is taken is skipped whole. Returns how many were added.
    fn admit(&mut self, path: &Path, group: Vec<Passage>) -> Option<usize> {
        let taken = group
            .iter()
            .find_map(|passage| Some((passage, self.first_seen.get(&passage.id)?)));
        if let Some((passage, (first_path, first_line))) = taken {
            let kind = ProblemKind::DuplicateId {
                id: passage.id.to_string(),
                first_path: first_path.clone(),
                first_line: *first_line,
            };
            self.problem(path, Some(passage.citation.line_start), kind);
            return None;
        }
        for passage in &group {
            let citation = &passage.citation;
            let origin = (citation.path.clone(), citation.line_start);
            self.first_seen.insert(passage.id.clone(), origin);
        }
        let count = group.len();
        self.report.passages.extend(group);
        Some(count)
    }

    fn problem(&mut self, path: &Path, line: Option<usize>, kind: ProblemKind) {
        let problem = Problem {
            path: path.to_owned(),
            line,
            kind,
        };
        tracing::warn!("skipped {problem}");
        self.report.problems.push(problem);
    }
}

/// `path` relative to `root`, with `/` between components whatever the platform.
fn relative_path(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let components: Vec<_> = relative
        .components()
        .map(|component| component.as_os_str().to_string_lossy())
        .collect();
    components.join("/")
}
