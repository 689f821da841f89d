//! Documents made up for benchmarks that fill a store directly, without the model: each text is
//! one passage of a plain document, analysed for real.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use wenda::corpus::{ArticleMeta, Citation, Layout, Passage, PassageId, Position};
use wenda::embedding::TextKey;
use wenda::index::Analyzer;
use wenda::store::{DocumentRecord, Origin, StoredPassage};

/// Document `id` whose paragraphs are `texts`, each a passage with its given id, all carrying
/// `metadata`.
pub fn document(
    id: String,
    texts: Vec<(PassageId, String)>,
    metadata: Map<String, Value>,
    analyzer: &Analyzer,
) -> (DocumentRecord, Vec<StoredPassage>) {
    let passages: Vec<StoredPassage> = texts
        .into_iter()
        .enumerate()
        .map(|(i, (passage_id, text))| {
            let paragraph = i + 1;
            let passage = Passage {
                id: passage_id,
                overlap: 0,
                article: ArticleMeta::default(),
                position: Position {
                    article: 1,
                    first_paragraph: paragraph,
                    last_paragraph: paragraph,
                    piece: 1,
                    pieces: 1,
                },
                source_id: None,
                metadata: metadata.clone(),
                citation: Citation {
                    path: id.clone(),
                    line_start: paragraph,
                    line_end: paragraph,
                    byte_start: 0,
                    byte_end: text.len(),
                    page_start: None,
                    page_end: None,
                },
                embeds_title: false,
                text,
            };
            StoredPassage {
                text_key: TextKey::of(&passage.embedding_text()),
                terms: analyzer.term_counts(&passage.text),
                passage,
            }
        })
        .collect();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64);
    let record = DocumentRecord {
        id,
        layout: Layout::Plain,
        title: None,
        date: None,
        source: None,
        url: None,
        metadata,
        text: passages
            .iter()
            .map(|p| p.passage.text.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        origin: Origin::Api,
        content_hash: [0; 32],
        created_at: now_ms,
        updated_at: now_ms,
        passages: passages.len(),
    };
    (record, passages)
}
