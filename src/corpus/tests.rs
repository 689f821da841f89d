//! Tests of the corpus stage as a whole: the seed news file, loading from disk, and properties
//! that must hold for any input.

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use crate::corpus::document::{self, TextDocument};
use crate::corpus::formats::ExtractError;
use crate::corpus::text::{is_cjk, is_line_break};
use crate::corpus::*;

/// Stands in for the model's tokenizer: one token per CJK character, per run of other letters
/// and digits, and per other symbol, plus two special tokens.
pub(crate) struct SimpleCounter;

impl TokenCounter for SimpleCounter {
    fn count_tokens(&self, text: &str) -> usize {
        let mut tokens = 2;
        let mut in_word = false;
        for c in text.chars() {
            let word_char = c.is_alphanumeric() && !is_cjk(c);
            if !((word_char && in_word) || c.is_whitespace()) {
                tokens += 1;
            }
            in_word = word_char;
        }
        tokens
    }
}

const SEED_FILE: &str = "000_6b84f5fb9e9426be.txt";

fn seeds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds")
}

fn load_seeds() -> LoadReport {
    load(&[seeds()], &ChunkConfig::new(&SimpleCounter))
}

fn non_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Titles, date/source lines and passage texts without their overlaps, in document order:
/// the input's non-whitespace characters must come back exactly, nothing lost, nothing twice.
/// Whitespace is left out of the comparison because normalisation only ever removes or
/// collapses whitespace.
fn reassembled(document: &TextDocument) -> String {
    let mut text = String::new();
    for (index, article) in document.articles.iter().enumerate() {
        for meta in [&article.title, &article.dateline].into_iter().flatten() {
            text.push_str(meta);
        }
        let passages = document.passages.iter().flatten();
        for passage in passages.filter(|passage| passage.position.article == index + 1) {
            text.push_str(passage.fresh_text());
        }
    }
    non_whitespace(&text)
}

/// Whether `text` has a space next to a CJK character that the source did not put there: every
/// space kept beside CJK must stand for whitespace within one line of `source`, between the same
/// two characters.
fn has_invented_space_beside_cjk(text: &str, source: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    chars.windows(3).any(|w| {
        w[1] == ' ' && (is_cjk(w[0]) || is_cjk(w[2])) && !has_inline_gap(source, w[0], w[2])
    })
}

/// Whether `source` has `before`, then spaces or tabs (no line break), then `after`.
fn has_inline_gap(source: &str, before: char, after: char) -> bool {
    source.match_indices(before).any(|(at, _)| {
        let rest = &source[at + before.len_utf8()..];
        let gap = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_whitespace() && !is_line_break(c))
                .len();
        gap > 0 && rest[gap..].starts_with(after)
    })
}

#[test]
fn seed_file_has_four_articles_with_full_titles_and_dates() {
    let report = load_seeds();
    assert_eq!(report.problems, []);
    assert_eq!(report.documents.len(), 1);
    let document = &report.documents[0];
    assert_eq!(document.path, SEED_FILE);
    assert!(document.rewrapped);
    assert_eq!(document.layout, Layout::News);
    assert_eq!(document.articles, 4);

    let mut articles: Vec<&ArticleMeta> = Vec::new();
    for passage in &report.passages {
        if articles.len() < passage.position.article {
            articles.push(&passage.article);
        }
    }
    let summary: Vec<_> = articles
        .iter()
        .map(|a| {
            let date = a.date.as_ref().expect("dated");
            (
                a.title.as_deref().expect("titled"),
                date.text.as_str(),
                date.iso.as_deref().expect("valid date"),
                a.source.as_deref().expect("source named"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "中共中央政治局召开会议 分析研究当前经济形势和经济工作 中共中央总书记习近平主持会议",
                "2025年04月25日",
                "2025-04-25",
                "新华网",
            ),
            (
                "习近平在中共中央政治局第二十次集体学习时强调 坚持自立自强 突出应用导向推动人工智能健康有序发展",
                "2025年04月26日",
                "2025-04-26",
                "新华网",
            ),
            (
                "习近平在上海考察时强调 加快建成具有全球影响力的科技创新高地",
                "2025年04月29日",
                "2025-04-29",
                "新华网",
            ),
            (
                "习近平主持召开部分省区市“十五五”时期经济社会发展座谈会强调 适应形势变化把握战略重点 科学谋划“十五五”时期经济社会发展",
                "2025年04月30日",
                "2025-04-30",
                "新华网",
            ),
        ]
    );
}

#[test]
fn seed_paragraphs_come_back_whole_and_citable() {
    let report = load_seeds();
    let source = fs::read_to_string(seeds().join(SEED_FILE)).unwrap();
    let find = |start: &str| {
        report
            .passages
            .iter()
            .find(|p| p.text.starts_with(start))
            .unwrap_or_else(|| panic!("no passage starts with {start}"))
    };

    let policy = find("会议强调，要加紧实施更加积极有为的宏观政策");
    assert_eq!(
        policy.text,
        "会议强调，要加紧实施更加积极有为的宏观政策，用好用足更加积极的财政政策和适度宽松的货币政策。\
         加快地方政府专项债券、超长期特别国债等发行使用。兜牢基层“三保”底线。适时降准降息，保持流动性\
         充裕，加力支持实体经济。创设新的结构性货币政策工具，设立新型政策性金融工具，支持科技创新、扩大\
         消费、稳定外贸等。强化政策取向一致性。"
    );
    let citation = &policy.citation;
    assert_eq!((citation.line_start, citation.line_end), (35, 46));
    let cited = &source[citation.byte_start..citation.byte_end];
    assert!(cited.starts_with("会议强调") && cited.ends_with("一致性。"));
    assert_eq!(non_whitespace(cited), policy.text);

    let opening = find("新华社北京4月25日电");
    assert_eq!(
        opening.text,
        "新华社北京4月25日电 中共中央政治局4月25日召开会议，分析研究当前经济形势和经济工作。\
         中共中央总书记习近平主持会议。"
    );
    assert_eq!(
        (opening.position.article, opening.position.first_paragraph),
        (1, 1)
    );

    // A paragraph that starts a page, after the page's leading space.
    let page_start = find("习近平指出，中国式现代化是全体人民共同富裕的社会主义现代化。");
    assert!(page_start.text.ends_with("尽力而为、量力而行。"));
    assert_eq!(page_start.citation.line_start, 378);

    // One-line paragraphs are merged into the paragraph before them.
    let closing = find("会议强调，要加强党对经济工作的全面领导");
    assert!(closing
        .text
        .ends_with("开创高质量发展新局面。会议还研究了其他事项。"));
    let position = &closing.position;
    assert_eq!(position.last_paragraph, position.first_paragraph + 1);

    for passage in &report.passages {
        let cited = &source[passage.citation.byte_start..passage.citation.byte_end];
        assert_eq!(
            non_whitespace(cited),
            non_whitespace(&passage.text),
            "{}",
            passage.id
        );
        assert!(!passage.text.contains(['\n', '\r']), "{}", passage.text);
        assert!(
            !has_invented_space_beside_cjk(&passage.text, &source),
            "{}",
            passage.text
        );
        assert!(!passage.text.contains("年 ") && !passage.text.contains(" 月"));
    }
}

#[test]
fn seed_file_loses_and_repeats_nothing() {
    let source = fs::read_to_string(seeds().join(SEED_FILE)).unwrap();
    let config = ChunkConfig::new(&SimpleCounter);
    let document = document::parse(
        SEED_FILE,
        &source,
        Layout::News,
        &ArticleMeta::default(),
        &config,
    );
    assert_eq!(reassembled(&document), non_whitespace(&source));

    let report = load_seeds();
    assert_eq!(report.passages.len(), 34);
    let embedded = report.passages[0].embedding_text();
    assert!(embedded.starts_with("中共中央政治局召开会议 分析研究当前经济形势和经济工作"));
    assert!(embedded.ends_with("\n新华社北京4月25日电 中共中央政治局4月25日召开会议，分析研究当前经济形势和经济工作。中共中央总书记习近平主持会议。"));
}

#[test]
fn seed_ids_are_stable_unique_and_url_safe() {
    let first: Vec<PassageId> = load_seeds().passages.into_iter().map(|p| p.id).collect();
    let second: Vec<PassageId> = load_seeds().passages.into_iter().map(|p| p.id).collect();
    assert_eq!(first, second);
    assert_eq!(first[0].as_str(), "000_6b84f5fb9e9426be.txt~1.1");
    let mut unique = first.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), first.len());
    for id in &first {
        let safe = id
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        assert!(safe, "{id}");
    }
}

#[test]
fn long_paragraphs_are_split_within_budget_with_overlap() {
    let paragraph = "第一句很长的话说明了一件事情。".repeat(30);
    let counter = SimpleCounter;
    let config = ChunkConfig {
        max_tokens: 100,
        ..ChunkConfig::new(&counter)
    };
    let document = document::parse(
        "long.txt",
        &paragraph,
        Layout::News,
        &ArticleMeta::default(),
        &config,
    );
    let pieces = &document.passages[0];
    assert!(pieces.len() > 1);
    let mut fresh = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        assert!(counter.count_tokens(&piece.embedding_text()) <= 100);
        assert!(piece.text.ends_with('。'));
        assert_eq!(
            (piece.position.piece, piece.position.pieces),
            (i + 1, pieces.len())
        );
        assert_eq!(piece.overlap > 0, i > 0);
        assert_eq!(
            piece.id.as_str(),
            format!(
                "long.txt~1.1{}",
                if i > 0 {
                    format!(".{}", i + 1)
                } else {
                    String::new()
                }
            )
        );
        fresh.push_str(piece.fresh_text());
    }
    assert_eq!(fresh, paragraph);
}

/// A scratch directory, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("wenda-corpus-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn problems(report: &LoadReport) -> Vec<(String, Option<usize>, ProblemKind)> {
    report
        .problems
        .iter()
        .map(|p| {
            let name = p.path.file_name().unwrap().to_string_lossy().into_owned();
            (name, p.line, p.kind.clone())
        })
        .collect()
}

#[test]
fn jsonl_records_load_with_their_ids_and_bad_lines_are_reported() {
    let dir = ScratchDir::new("jsonl");
    let long_text = "这是一条很长的记录，需要被切分成几段。".repeat(10);
    let lines = [
        r#"{"id": "doc-1", "text": "第一条。", "title": "标题", "date": "2025-04-25", "source": "新华网", "url": "https://example.com/1", "metadata": {"lang": "zh"}, "split": "dev"}"#.to_owned(),
        String::new(),
        r#"{"id": 2, "text": "Second record."}"#.to_owned(),
        r#"{"id": "doc-3", "text": "unterminated"#.to_owned(),
        r#"{"id": "doc-1", "text": "Same id again."}"#.to_owned(),
        r#"{"id": "doc-4", "title": "no text"}"#.to_owned(),
        format!(r#"{{"_id": "long", "text": "{long_text}"}}"#),
    ];
    let path = dir.write("corpus.jsonl", lines.join("\n"));
    let counter = SimpleCounter;
    let config = ChunkConfig {
        max_tokens: 64,
        ..ChunkConfig::new(&counter)
    };
    let report = load(&[&path], &config);

    let kinds = problems(&report);
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(matches!(
        &kinds[0],
        (_, Some(4), ProblemKind::MalformedJson(_))
    ));
    assert!(matches!(
        &kinds[1],
        (_, Some(6), ProblemKind::MissingField("text"))
    ));
    assert_eq!(
        kinds[2],
        (
            "corpus.jsonl".to_owned(),
            Some(5),
            ProblemKind::DuplicateId {
                id: "doc-1".to_owned(),
                first_path: "corpus.jsonl".to_owned(),
                first_line: 1
            }
        )
    );
    assert_eq!(
        report.problems[2].to_string(),
        format!(
            "{}:5: duplicate passage id \"doc-1\", first loaded from corpus.jsonl line 1",
            path.display()
        )
    );

    let first = &report.passages[0];
    assert_eq!(first.id.as_str(), "doc-1");
    assert_eq!(first.text, "第一条。");
    assert_eq!(first.article.title.as_deref(), Some("标题"));
    assert_eq!(
        first.article.date.as_ref().unwrap().iso.as_deref(),
        Some("2025-04-25")
    );
    assert_eq!(first.article.url.as_deref(), Some("https://example.com/1"));
    assert_eq!(first.metadata["lang"], "zh");
    assert_eq!(first.metadata["split"], "dev");
    assert_eq!(first.embedding_text(), "标题\n第一条。");
    assert_eq!(first.citation.line_start, 1);
    assert_eq!(report.passages[1].id.as_str(), "2");

    let long: Vec<&Passage> = report.passages[2..].iter().collect();
    assert!(long.len() > 1);
    for (i, piece) in long.iter().enumerate() {
        let expected = if i == 0 {
            "long".to_owned()
        } else {
            format!("long#{}", i + 1)
        };
        assert_eq!(piece.id.as_str(), expected);
        assert_eq!(
            piece.source_id.as_ref().map(PassageId::as_str),
            Some("long")
        );
        assert!(counter.count_tokens(&piece.embedding_text()) <= 64);
        assert_eq!(piece.citation.line_start, 7);
    }
    let rebuilt: String = long.iter().map(|p| p.fresh_text()).collect();
    assert_eq!(rebuilt, long_text);
    assert_eq!(report.documents[0].articles, 3);
    assert_eq!(report.documents[0].layout, Layout::Jsonl);
}

#[test]
fn bad_files_are_reported_and_the_rest_still_loads() {
    let dir = ScratchDir::new("bad-files");
    dir.write(
        "a.txt",
        ["第一行\n第二".as_bytes(), b"\xff", "行\n".as_bytes()].concat(),
    );
    dir.write("b.txt", " \n\n");
    dir.write("c.jsonl", "");
    dir.write(
        "d.md",
        "# Notes\n\nA short note, wrapped\nover two lines.\n",
    );
    let explicit = dir.write("e.csv", "x,y\n");
    dir.write("f.txt", b"%PDF-1.7\n1 0 obj\n\x00\x01");
    // GBK, as many Chinese text files are: decoded, not refused.
    let (gbk, _, _) =
        encoding_rs::GBK.encode("上海“模速空间”已入驻企业一百余家，覆盖大模型产业链。");
    dir.write("g.txt", gbk);
    let report = load(
        &[&dir.0, &explicit, &dir.0.join("missing.txt")],
        &ChunkConfig::new(&SimpleCounter),
    );

    let kinds: Vec<_> = problems(&report)
        .into_iter()
        .map(|(name, line, kind)| (name, line, kind.to_string()))
        .collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    let refused = |error| ProblemKind::Unextractable(error).to_string();
    assert_eq!(
        kinds[..5],
        [
            (
                "a.txt".to_owned(),
                None,
                refused(ExtractError::DamagedUtf8 {
                    offset: 16,
                    line: 2
                })
            ),
            ("b.txt".to_owned(), None, "empty file".to_owned()),
            ("c.jsonl".to_owned(), None, "empty file".to_owned()),
            (
                "f.txt".to_owned(),
                None,
                refused(ExtractError::Binary { offset: 17 })
            ),
            (
                "e.csv".to_owned(),
                None,
                ProblemKind::UnsupportedExtension.to_string()
            ),
        ]
    );
    assert!(kinds[5].2.starts_with("cannot read"));
    assert!(kinds[4]
        .2
        .contains(".txt, .text, .md, .markdown, .jsonl, .ndjson"));

    let texts: Vec<&str> = report.passages.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Notes A short note, wrapped over two lines.",
            "上海“模速空间”已入驻企业一百余家，覆盖大模型产业链。"
        ]
    );
    let layouts: Vec<Layout> = report.documents.iter().map(|d| d.layout).collect();
    assert_eq!(layouts, [Layout::Markdown, Layout::News]);
}

#[test]
fn directories_are_walked_in_sorted_order() {
    let dir = ScratchDir::new("walk");
    dir.write("b/z.txt", "Zed.");
    dir.write("b/a.md", "Alpha.");
    dir.write("a.txt", "First.");
    dir.write("b/notes.pdf", "not text");
    dir.write("b/.hidden.txt", "Hidden.");
    dir.write(".git/config.txt", "Hidden too.");
    let seeds_copy = seeds().join(SEED_FILE);
    let report = load(&[&dir.0, &seeds_copy], &ChunkConfig::new(&SimpleCounter));
    assert_eq!(report.problems, []);
    assert_eq!(report.ignored_files, 1);
    let paths: Vec<&str> = report.documents.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["a.txt", "b/a.md", "b/z.txt", SEED_FILE]);
    assert_eq!(report.passages[1].id.as_str(), "b~2Fa.md~1.1");
    assert_eq!(report.passages[1].citation.path, "b/a.md");
}

/// A symbolic link is followed only to a file inside the folder being walked, and a file over
/// the size limit is skipped unread, with its document counted as unknown rather than gone.
#[cfg(unix)]
#[test]
fn links_out_of_the_folder_and_oversized_files_are_skipped_with_a_reason() {
    let outside = ScratchDir::new("links-outside");
    let secret = outside.write("secret.txt", "A system file.");
    let dir = ScratchDir::new("links");
    let inner = dir.write("notes/inner.txt", "Inside.");
    std::os::unix::fs::symlink(&secret, dir.0.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(&inner, dir.0.join("alias.txt")).unwrap();
    dir.write("big.txt", "x".repeat(101));
    let options = ReadOptions {
        max_file_bytes: 100,
        ..ReadOptions::default()
    };
    let scan = read_files(&[&dir.0], options);
    let ids: Vec<&str> = scan.files.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["alias.txt", "notes/inner.txt"]);
    let kinds: Vec<&ProblemKind> = scan.problems.iter().map(|p| &p.kind).collect();
    assert_eq!(
        kinds,
        [
            &ProblemKind::TooLarge {
                bytes: 101,
                limit: 100
            },
            &ProblemKind::LinkOutside(fs::canonicalize(&secret).unwrap()),
        ]
    );
    assert_eq!(scan.unread, ["big.txt"]);
    assert!(scan.complete);
    // Following links on purpose (`--follow-symlinks`) reads the file it leads to.
    let followed = read_files(
        &[&dir.0],
        ReadOptions {
            follow_symlinks: true,
            ..options
        },
    );
    let ids: Vec<&str> = followed.files.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["alias.txt", "leak.txt", "notes/inner.txt"]);
    assert_eq!(followed.files[1].text, "A system file.");
}

/// Arbitrary text, weighted towards what the pipeline treats specially.
fn arbitrary_text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        ' ', ' ', '\n', '\n', '\n', '\r', '\t', '\u{3000}', '\u{feff}', '。', '，', '！', '”',
        '（', '）', '.', '?', '"', '年', '月', '日', '来', '源', '：', '2', '0', '5',
    ]);
    let han = (0x4E00u32..0x9FA5).prop_map(|c| char::from_u32(c).unwrap());
    let ch =
        prop_oneof![3 => special, 3 => han, 1 => any::<char>(), 2 => prop::char::range('a', 'z')];
    prop::collection::vec(ch, 0..400).prop_map(|chars| chars.into_iter().collect())
}

/// Text laid out like the seed: wrapped lines, blank lines between, paragraph ends marked with
/// trailing spaces, pages starting with a space, date/source lines.
fn pdf_like_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        12 => (0x4E00u32..0x9FA5).prop_map(|c| char::from_u32(c).unwrap().to_string()),
        2 => Just("，".to_owned()),
        1 => Just("。".to_owned()),
        1 => Just(" 4 ".to_owned()),
        1 => Just("word".to_owned()),
    ];
    // Most lines run to the margin; the last line of a paragraph may be short.
    let length = prop_oneof![4 => 22..27usize, 1 => 1..27usize];
    let content = length
        .prop_flat_map(move |length| prop::collection::vec(part.clone(), length))
        .prop_map(|parts| parts.concat());
    let line = prop_oneof![
        8 => content,
        1 => Just("（2025 年 04 月 25 日 来源：新华网）".to_owned()),
    ];
    let decorated = (
        line,
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.9),
    )
        .prop_map(|(text, page_start, paragraph_end, double_spaced)| {
            format!(
                "{}{text}{}\n{}",
                if page_start { " " } else { "" },
                if paragraph_end { " " } else { "" },
                if double_spaced { "\n" } else { "" },
            )
        });
    prop::collection::vec(decorated, 0..60).prop_map(|lines| lines.concat())
}

fn check_document(text: &str) -> Result<(), TestCaseError> {
    let counter = SimpleCounter;
    let config = ChunkConfig {
        max_tokens: 24,
        min_tokens: 8,
        ..ChunkConfig::new(&counter)
    };
    let document = document::parse(
        "doc.txt",
        text,
        Layout::News,
        &ArticleMeta::default(),
        &config,
    );
    let expected = non_whitespace(text.strip_prefix('\u{feff}').unwrap_or(text));
    prop_assert_eq!(reassembled(&document), expected);
    for passage in document.passages.iter().flatten() {
        prop_assert!(!passage.text.is_empty());
        prop_assert!(!passage
            .text
            .contains(|c: char| c.is_whitespace() && c != ' '));
        prop_assert!(
            !has_invented_space_beside_cjk(&passage.text, text),
            "{:?}",
            passage.text
        );
        let fits = counter.count_tokens(&passage.embedding_text()) <= config.max_tokens;
        prop_assert!(
            fits || passage.fresh_text().chars().count() == 1,
            "{:?}",
            passage.text
        );
        let citation = &passage.citation;
        let cited = &text[citation.byte_start..citation.byte_end];
        prop_assert_eq!(non_whitespace(cited), non_whitespace(&passage.text));
    }
    Ok(())
}

proptest! {
    #[test]
    fn any_text_segments_without_loss(text in arbitrary_text()) {
        check_document(&text)?;
    }

    #[test]
    fn pdf_like_text_segments_without_loss(text in pdf_like_text()) {
        check_document(&text)?;
    }
}

fn parse_as(layout: Layout, text: &str, meta: &ArticleMeta) -> ParsedDocument {
    let metadata = serde_json::json!({"lang": "zh"})
        .as_object()
        .cloned()
        .unwrap();
    let input = DocumentInput {
        id: "doc 1",
        text,
        layout,
        meta,
        metadata: &metadata,
    };
    parse_document(&input, &ChunkConfig::new(&SimpleCounter))
}

#[test]
fn plain_text_is_one_article_with_the_given_metadata() {
    let meta = ArticleMeta {
        title: Some("给定标题".into()),
        date: Some(ArticleDate::parse("2025-04-29")),
        ..ArticleMeta::default()
    };
    // A dateline in plain text is text, not the start of an article.
    let text = "第一段第一行\n第一段第二行。\n\n（2025年04月25日来源：新华网）\n\n第二段。";
    let parsed = parse_as(Layout::Plain, text, &meta);
    assert_eq!((parsed.rewrapped, parsed.articles), (false, 1));
    let passages = parsed.into_passages();
    let all: String = passages.iter().map(|p| p.text.as_str()).collect();
    assert!(
        all.contains("第一段第一行第一段第二行。"),
        "joined without a space: {all}"
    );
    assert!(all.contains("来源：新华网"), "{all}");
    for passage in &passages {
        assert_eq!(passage.article.title.as_deref(), Some("给定标题"));
        assert_eq!(passage.article.date.as_ref().unwrap().label(), "2025-04-29");
        assert_eq!(passage.metadata["lang"], "zh");
        assert_eq!(passage.citation.path, "doc 1");
        assert!(
            passage.id.as_str().starts_with("doc~201~"),
            "{}",
            passage.id
        );
    }
}

#[test]
fn markdown_headings_are_paragraphs_without_their_markers() {
    let text =
        "# 标题一\n正文第一段，内容足够长以便独立成段落。\n\n## 小节\n\n#不是标题\n    # 缩进代码";
    let parsed = parse_as(Layout::Markdown, text, &ArticleMeta::default());
    let passages = parsed.into_passages();
    let all: Vec<&str> = passages.iter().map(|p| p.text.as_str()).collect();
    let joined = all.join("|");
    assert!(joined.starts_with("标题一"), "{joined}");
    assert!(
        joined.contains("小节") && !joined.contains("## "),
        "{joined}"
    );
    assert!(
        joined.contains("#不是标题"),
        "not a heading without a space: {joined}"
    );
    assert!(
        joined.contains("#缩进代码"),
        "indented four spaces: {joined}"
    );
    // Citations point into the heading line, after its marker.
    let first = &passages[0];
    assert_eq!(first.citation.line_start, 1);
    assert!(text[first.citation.byte_start..].starts_with("标题一"));
}

#[test]
fn news_articles_keep_their_own_metadata_and_take_the_rest_from_the_document() {
    let text = "会议召开\n\n（2025年04月25日来源：新华网）\n\n新华社北京4月25日电 会议分析研究了当前经济形势。";
    let meta = ArticleMeta {
        title: Some("文档标题".into()),
        source: Some("其他来源".into()),
        url: Some("https://example.org/a".into()),
        ..ArticleMeta::default()
    };
    let passages = parse_as(Layout::News, text, &meta).into_passages();
    assert!(!passages.is_empty());
    for passage in &passages {
        assert_eq!(passage.article.title.as_deref(), Some("会议召开"));
        assert_eq!(passage.article.source.as_deref(), Some("新华网"));
        assert_eq!(
            passage.article.url.as_deref(),
            Some("https://example.org/a")
        );
    }
}

#[test]
fn repeated_record_ids_within_a_document_are_skipped_and_reported() {
    let text = "{\"id\": \"a\", \"text\": \"第一条。\"}\n{\"id\": \"a\", \"text\": \"第二条。\"}\n{\"id\": \"b\", \"text\": \"第三条。\"}";
    let parsed = parse_as(Layout::Jsonl, text, &ArticleMeta::default());
    assert_eq!(parsed.articles, 2);
    assert_eq!(parsed.problems.len(), 1);
    assert!(matches!(
        parsed.problems[0],
        (2, ProblemKind::DuplicateId { .. })
    ));
    let ids: Vec<String> = parsed
        .into_passages()
        .iter()
        .map(|p| p.id.to_string())
        .collect();
    assert_eq!(ids, ["a", "b"]);
}

/// A form feed ends a page: citations say which pages a passage spans, and the break is no
/// character of the passage (Chinese text continuing onto the next page stays unbroken).
#[test]
fn form_feeds_are_page_breaks_in_citations_and_nothing_in_passages() {
    let counter = SimpleCounter;
    let config = ChunkConfig {
        min_tokens: 1,
        ..ChunkConfig::new(&counter)
    };
    let text =
        "第一页的第一段。\n\n第二段从第一页开始，\n\u{c}在第二页结束。\n\n\u{c}第三页的一段。";
    let parsed = parse_document(
        &DocumentInput {
            id: "paged",
            text,
            layout: Layout::Plain,
            meta: &ArticleMeta::default(),
            metadata: &serde_json::Map::new(),
        },
        &config,
    );
    let passages = parsed.into_passages();
    let seen: Vec<(&str, Option<usize>, Option<usize>)> = passages
        .iter()
        .map(|p| (p.text.as_str(), p.citation.page_start, p.citation.page_end))
        .collect();
    assert_eq!(
        seen,
        [
            ("第一页的第一段。", Some(1), Some(1)),
            ("第二段从第一页开始，在第二页结束。", Some(1), Some(2)),
            ("第三页的一段。", Some(3), Some(3)),
        ]
    );
    let plain = parse_as(Layout::Plain, "没有分页的文本。", &ArticleMeta::default());
    assert_eq!(plain.into_passages()[0].citation.page_start, None);
}
