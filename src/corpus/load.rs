//! Loads the files and directories a user names, reporting what it has to skip.
//!
//! Directories are walked recursively in sorted order, so that the corpus and its generated ids
//! do not depend on the file system's listing order. Within them, files of a format wenda reads
//! ([`Formats::standard`]: `.txt`, `.md`, `.jsonl`, …) are loaded and other files are counted as
//! ignored; hidden entries (`.git`, editor
//! files) are passed over, and symbolic links to directories are not followed, to avoid cycles.
//! A symbolic link to a file is followed only when the file is inside the folder being walked:
//! a link to `/etc/…` would otherwise put a system file in the corpus and serve it. Files over
//! a size limit are skipped before they are read. A file named explicitly must have one of
//! those extensions. Text in a legacy encoding (GBK, Big5, …) is decoded; what cannot be decoded
//! whole is reported, never read with characters replaced. A bad file, line or duplicate id costs only itself: the rest still loads.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::corpus::formats::{FileFormat, Formats};
use crate::corpus::problem::{Problem, ProblemKind};
use crate::corpus::{
    parse_document, ArticleMeta, ChunkConfig, Document, DocumentInput, Layout, Passage, PassageId,
};

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

/// A file of a format wenda reads, found under the paths given, read and decoded.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Where it is on disk.
    pub path: PathBuf,
    /// Its path relative to the root it was found under, with `/` separators: the document id.
    pub id: String,
    pub layout: Layout,
    pub text: String,
}

/// The files of a corpus, before they are cut into passages.
#[derive(Debug, Default)]
pub struct FileScan {
    pub files: Vec<SourceFile>,
    /// Files that could not be read.
    pub problems: Vec<Problem>,
    /// Files in the directories walked that are not of a supported type.
    pub ignored_files: usize,
    /// Ids of files found but not read (an I/O error): what they hold is unknown, not gone.
    pub unread: Vec<String>,
    /// Whether every path given, and every directory below, could be listed: when not, a
    /// document whose file was not seen may still exist.
    pub complete: bool,
    options: ReadOptions,
}

/// Files larger than this are skipped unless the caller allows more (`--max-file-bytes`).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Which files of a folder are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Larger files are skipped (and reported), their documents kept.
    pub max_file_bytes: u64,
    /// Whether symbolic links leading out of the folder are followed; by default only links
    /// to files inside it are, so a link cannot publish a file the folder's owner never put
    /// there (`/etc/passwd`, another user's notes).
    pub follow_symlinks: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            follow_symlinks: false,
        }
    }
}

/// Finds and reads the supported files of `paths`, each a file or a directory, as `options`
/// say.
///
/// Document ids are paths relative to the directory given, or the file name for a file given
/// on its own.
pub fn read_files<P: AsRef<Path>>(paths: &[P], options: ReadOptions) -> FileScan {
    let mut scan = FileScan {
        complete: true,
        options,
        ..FileScan::default()
    };
    for path in paths {
        scan.read_path(path.as_ref());
    }
    scan
}

/// Loads `paths`, each a file or a directory, into passages sized by `config`. A passage id
/// taken by an earlier file costs the later one its paragraph group (or record).
pub fn load<P: AsRef<Path>>(paths: &[P], config: &ChunkConfig<'_>) -> LoadReport {
    let scan = read_files(paths, ReadOptions::default());
    let mut loader = Loader {
        report: LoadReport {
            problems: scan.problems,
            ignored_files: scan.ignored_files,
            ..LoadReport::default()
        },
        first_seen: HashMap::new(),
    };
    for file in &scan.files {
        loader.load_file(file, config);
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

/// The format of the file at `path`, by its extension.
fn format_of(path: &Path) -> Option<&'static dyn FileFormat> {
    Formats::standard().by_file_name(&path.file_name()?.to_string_lossy())
}

impl FileScan {
    fn read_path(&mut self, path: &Path) {
        match fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() => self.walk(path, path),
            Ok(_) => match format_of(path) {
                Some(format) => {
                    let name = path.file_name().unwrap_or(path.as_os_str());
                    self.read_file(path, &name.to_string_lossy(), format);
                }
                None => self.problem(path, None, ProblemKind::UnsupportedExtension),
            },
            Err(error) => {
                self.complete = false;
                self.problem(path, None, ProblemKind::Unreadable(error.to_string()))
            }
        }
    }

    fn walk(&mut self, root: &Path, directory: &Path) {
        // `file_type` does not follow symbolic links, so linked directories are not entered.
        let entries = fs::read_dir(directory).and_then(|entries| {
            entries
                .map(|entry| {
                    let entry = entry?;
                    Ok((entry.path(), entry.file_type()?))
                })
                .collect::<std::io::Result<Vec<(PathBuf, fs::FileType)>>>()
        });
        let mut entries = match entries {
            Ok(entries) => entries,
            Err(error) => {
                self.complete = false;
                return self.problem(directory, None, ProblemKind::Unreadable(error.to_string()));
            }
        };
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, file_type) in entries {
            let hidden = path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if file_type.is_dir() {
                self.walk(root, &path);
            } else if let Some(format) = format_of(&path) {
                if file_type.is_symlink()
                    && !self.options.follow_symlinks
                    && !self.link_stays_inside(root, &path)
                {
                    continue;
                }
                self.read_file(&path, &relative_path(root, &path), format);
            } else {
                self.ignored_files += 1;
            }
        }
    }

    /// Whether the symbolic link at `path` leads to a file inside `root`; reports it when not.
    fn link_stays_inside(&mut self, root: &Path, path: &Path) -> bool {
        let resolved = fs::canonicalize(root).and_then(|root| Ok((root, fs::canonicalize(path)?)));
        match resolved {
            Ok((root, target)) if target.starts_with(&root) => true,
            Ok((_, target)) => {
                self.problem(path, None, ProblemKind::LinkOutside(target));
                false
            }
            Err(error) => {
                self.unread.push(relative_path(root, path));
                self.problem(path, None, ProblemKind::Unreadable(error.to_string()));
                false
            }
        }
    }

    /// Reads the file at `path`; `id` is its path relative to its root.
    fn read_file(&mut self, path: &Path, id: &str, format: &dyn FileFormat) {
        if let Ok(metadata) = fs::metadata(path) {
            if metadata.len() > self.options.max_file_bytes {
                // What it holds is unknown, not gone: its document stays.
                self.unread.push(id.to_owned());
                let kind = ProblemKind::TooLarge {
                    bytes: metadata.len(),
                    limit: self.options.max_file_bytes,
                };
                return self.problem(path, None, kind);
            }
        }
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.unread.push(id.to_owned());
                return self.problem(path, None, ProblemKind::Unreadable(error.to_string()));
            }
        };
        let extracted = match format.extract(&bytes, None) {
            Ok(extracted) => extracted,
            Err(error) => return self.problem(path, None, ProblemKind::Unextractable(error)),
        };
        if extracted.encoding != encoding_rs::UTF_8.name() {
            tracing::info!(path = %path.display(), encoding = extracted.encoding, "decoded");
        }
        let text = extracted.text;
        if text.trim_start_matches('\u{feff}').trim().is_empty() {
            return self.problem(path, None, ProblemKind::Empty);
        }
        self.files.push(SourceFile {
            path: path.to_owned(),
            id: id.to_owned(),
            layout: extracted.layout,
            text,
        });
    }

    fn problem(&mut self, path: &Path, line: Option<usize>, kind: ProblemKind) {
        report(&mut self.problems, path, line, kind);
    }
}

struct Loader {
    report: LoadReport,
    /// Where each passage id was first loaded from: document path and line.
    first_seen: HashMap<PassageId, (String, usize)>,
}

impl Loader {
    fn load_file(&mut self, file: &SourceFile, config: &ChunkConfig<'_>) {
        let parsed = parse_document(
            &DocumentInput {
                id: &file.id,
                text: &file.text,
                layout: file.layout,
                meta: &ArticleMeta::default(),
                metadata: &serde_json::Map::new(),
            },
            config,
        );
        for (line, kind) in parsed.problems {
            self.problem(&file.path, Some(line), kind);
        }
        let mut loaded_groups = 0;
        let mut passages = 0;
        for group in parsed.groups {
            if let Some(count) = self.admit(&file.path, group) {
                loaded_groups += 1;
                passages += count;
            }
        }
        tracing::debug!(path = %file.path.display(), passages, "loaded");
        self.report.documents.push(Document {
            path: file.id.clone(),
            layout: file.layout,
            rewrapped: parsed.rewrapped,
            // A JSON-lines record counts as an article.
            articles: if file.layout == Layout::Jsonl {
                loaded_groups
            } else {
                parsed.articles
            },
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
        report(&mut self.report.problems, path, line, kind);
    }
}

/// Logs a problem and adds it to `problems`.
fn report(problems: &mut Vec<Problem>, path: &Path, line: Option<usize>, kind: ProblemKind) {
    let problem = Problem {
        path: path.to_owned(),
        line,
        kind,
    };
    tracing::warn!("skipped {problem}");
    problems.push(problem);
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
