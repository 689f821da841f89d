//! Text files: plain text (cut as news, whose rules leave other text as it is), Markdown and
//! JSON lines, in any common character encoding.

use encoding_rs::Encoding;

use super::{decode_text, ExtractError, Extracted, FileFormat};
use crate::corpus::Layout;

/// A format whose bytes are text, cut by one layout.
pub(super) struct TextFormat {
    name: &'static str,
    layout: Layout,
    extensions: &'static [&'static str],
    media_types: &'static [&'static str],
}

impl TextFormat {
    /// Plain text, read as news: hard-wrapped lines (text extracted from PDF) are rejoined and a
    /// title over a date/source line starts an article; text without them is cut as plain.
    pub(super) const TEXT: TextFormat = TextFormat {
        name: "text",
        layout: Layout::News,
        extensions: &["txt", "text"],
        media_types: &["text/plain"],
    };

    pub(super) const MARKDOWN: TextFormat = TextFormat {
        name: "markdown",
        layout: Layout::Markdown,
        extensions: &["md", "markdown"],
        media_types: &["text/markdown", "text/x-markdown"],
    };

    /// One ready passage per line.
    pub(super) const JSONL: TextFormat = TextFormat {
        name: "jsonl",
        layout: Layout::Jsonl,
        extensions: &["jsonl", "ndjson"],
        media_types: &[
            "application/x-ndjson",
            "application/ndjson",
            "application/jsonl",
            "application/json-lines",
        ],
    };
}

impl FileFormat for TextFormat {
    fn name(&self) -> &'static str {
        self.name
    }

    fn extensions(&self) -> &'static [&'static str] {
        self.extensions
    }

    fn media_types(&self) -> &'static [&'static str] {
        self.media_types
    }

    fn extract(
        &self,
        bytes: &[u8],
        charset: Option<&'static Encoding>,
    ) -> Result<Extracted, ExtractError> {
        let decoded = decode_text(bytes, charset)?;
        Ok(Extracted {
            text: decoded.text,
            layout: self.layout,
            encoding: decoded.encoding,
        })
    }
}
