//! The file formats wenda reads, and the one registry that says which is which: by name, file
//! extension, media type or the file's first bytes. The corpus folder, `PUT …/documents/{id}`
//! and `documents:import` all go through [`Formats::standard`], so a format added here is read
//! everywhere at once.
//!
//! A format turns a file's bytes into an [`Extracted`] document: its text (UTF-8) and the
//! [`Layout`] that text is cut into passages by.

mod encoding;
mod text;

use std::sync::LazyLock;

use encoding_rs::Encoding;

pub use encoding::{decode_text, DecodedText};
use text::TextFormat;

use crate::corpus::Layout;

/// A kind of file wenda reads into a document.
pub trait FileFormat: Send + Sync {
    /// What requests and reports call it: `text`, `markdown`, `jsonl`.
    fn name(&self) -> &'static str;
    /// File name extensions, lower case, without the dot.
    fn extensions(&self) -> &'static [&'static str];
    /// Media types (`Content-Type` without parameters), lower case.
    fn media_types(&self) -> &'static [&'static str];
    /// Whether `head`, the first bytes of a file, carry this format's signature. Text formats
    /// have none.
    fn sniff(&self, _head: &[u8]) -> bool {
        false
    }
    /// The document in `bytes`; `charset` is the text encoding the sender declared, if any.
    fn extract(
        &self,
        bytes: &[u8],
        charset: Option<&'static Encoding>,
    ) -> Result<Extracted, ExtractError>;
}

/// A document as a format read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub text: String,
    pub layout: Layout,
    /// The character encoding the bytes were in (`UTF-8`, `GBK`, `Big5`, …).
    pub encoding: &'static str,
}

/// Why a file's bytes are not a document of its format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("binary data, not text (a NUL byte at offset {offset})")]
    Binary { offset: usize },
    #[error(
        "damaged UTF-8: invalid byte at offset {offset} (line {line}) in text that is otherwise \
         UTF-8; repair or re-export the file"
    )]
    DamagedUtf8 { offset: usize, line: usize },
    #[error("not UTF-8, and not readable as {guess} either (the closest legacy encoding); convert the file to UTF-8")]
    Undecodable { guess: &'static str },
    #[error("not valid {charset}, the charset it was declared in")]
    NotDeclared { charset: &'static str },
}

/// The media type of a `Content-Type` value: lower case, without its parameters
/// (`Text/Plain; charset=GBK` → `text/plain`).
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The formats wenda reads.
pub struct Formats {
    formats: Vec<Box<dyn FileFormat>>,
}

impl Formats {
    /// Every format wenda reads.
    pub fn standard() -> &'static Formats {
        static STANDARD: LazyLock<Formats> = LazyLock::new(|| Formats {
            formats: vec![
                Box::new(TextFormat::TEXT),
                Box::new(TextFormat::MARKDOWN),
                Box::new(TextFormat::JSONL),
            ],
        });
        &STANDARD
    }

    pub fn all(&self) -> impl Iterator<Item = &dyn FileFormat> {
        self.formats.iter().map(|f| &**f)
    }

    /// The format of a file called `file_name`, by its extension (any case).
    pub fn by_file_name(&self, file_name: &str) -> Option<&dyn FileFormat> {
        let (_, extension) = file_name.rsplit_once('.')?;
        let extension = extension.to_ascii_lowercase();
        self.all()
            .find(|f| f.extensions().contains(&extension.as_str()))
    }

    /// The format of a `Content-Type` (its parameters ignored, any case).
    pub fn by_media_type(&self, content_type: &str) -> Option<&dyn FileFormat> {
        let media_type = media_type(content_type);
        self.all()
            .find(|f| f.media_types().contains(&media_type.as_str()))
    }

    /// The format whose signature `head` carries.
    pub fn sniff(&self, head: &[u8]) -> Option<&dyn FileFormat> {
        self.all().find(|f| f.sniff(head))
    }

    /// The extensions read, for messages: `.txt, .text, .md, …`.
    pub fn extension_list(&self) -> String {
        self.all()
            .flat_map(|f| f.extensions())
            .map(|e| format!(".{e}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_extension_and_media_type_names_one_format() {
        let formats = Formats::standard();
        let mut extensions: Vec<&str> = formats
            .all()
            .flat_map(|f| f.extensions())
            .copied()
            .collect();
        let mut media_types: Vec<&str> = formats
            .all()
            .flat_map(|f| f.media_types())
            .copied()
            .collect();
        for list in [&mut extensions, &mut media_types] {
            let count = list.len();
            list.sort();
            list.dedup();
            assert_eq!(list.len(), count, "{list:?}");
        }
    }

    #[test]
    fn formats_are_found_by_extension_and_media_type() {
        let formats = Formats::standard();
        let name = |f: Option<&dyn FileFormat>| f.map(|f| f.name());
        assert_eq!(name(formats.by_file_name("新闻/2025.TXT")), Some("text"));
        assert_eq!(name(formats.by_file_name("notes.md")), Some("markdown"));
        assert_eq!(name(formats.by_file_name("a.b.jsonl")), Some("jsonl"));
        assert_eq!(name(formats.by_file_name("README")), None);
        assert_eq!(name(formats.by_file_name("data.csv")), None);
        assert_eq!(
            name(formats.by_media_type("Text/Markdown; charset=UTF-8")),
            Some("markdown")
        );
        assert_eq!(name(formats.by_media_type("text/plain")), Some("text"));
        assert_eq!(name(formats.by_media_type("image/png")), None);
        assert_eq!(name(formats.sniff(b"plain words")), None);
    }
}
