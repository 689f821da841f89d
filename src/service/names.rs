//! Names users give: collection names and document ids, checked once here.

use super::ServiceError;

/// The collection the start-up corpus fills and the routes without a collection mean.
pub const DEFAULT_COLLECTION: &str = "default";

/// Longest document id, in bytes.
pub const MAX_DOCUMENT_ID_BYTES: usize = 512;

/// A collection name: 1 to 64 of `a-z 0-9 _ -`.
pub fn check_collection_name(name: &str) -> Result<(), ServiceError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ServiceError::InvalidName(format!(
            "{name:?} is not a collection name: use 1 to 64 of a-z, 0-9, _ and -"
        )))
    }
}

/// A document id: 1 to 512 bytes of UTF-8 without control characters, not starting or ending
/// with whitespace. It names the document in citations and is the first part of its passage ids.
pub fn check_document_id(id: &str) -> Result<(), ServiceError> {
    let problem = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_DOCUMENT_ID_BYTES {
        Some("it is longer than 512 bytes")
    } else if id.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if id.trim() != id {
        Some("it starts or ends with whitespace")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(ServiceError::InvalidName(format!(
            "{id:?} is not a document id: {problem}"
        ))),
    }
}

/// Whether `text` has nothing to search for: only whitespace, control characters and
/// invisible format characters (zero-width spaces and joiners, byte-order marks).
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

/// Control characters and invisible format characters: nothing a reader sees.
fn is_invisible(c: char) -> bool {
    (c.is_control() && !c.is_whitespace())
        || matches!(
            c,
            '\u{AD}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}'
        )
}

/// A question as it is searched: invisible characters removed (a zero-width space pasted
/// between two Chinese characters would otherwise split a word), composed to Unicode NFC (so
/// `é` typed as `e` + accent finds `é`), and trimmed.
pub fn normalise_query(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let visible: String = text.chars().filter(|&c| !is_invisible(c)).nfc().collect();
    visible.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names() {
        for good in ["default", "a", "news_2025-04", &"x".repeat(64)] {
            assert!(check_collection_name(good).is_ok(), "{good}");
        }
        for bad in ["", "News", "a b", "a/b", "新闻", &"x".repeat(65), "a.b"] {
            assert!(check_collection_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn document_ids() {
        for good in ["a", "news/000.txt", "新闻 1.md", &"é".repeat(256)] {
            assert!(check_document_id(good).is_ok(), "{good}");
        }
        for bad in ["", " a", "a\n", "a\u{0}b", &"x".repeat(513)] {
            assert!(check_document_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn blank_queries() {
        for blank in ["", "  \n", "\u{200B}\u{200B}", "\u{0}\u{0}", "\u{FEFF} "] {
            assert!(is_blank(blank), "{blank:?}");
        }
        assert!(!is_blank(" 问 "));
    }

    #[test]
    fn queries_are_composed_and_cleaned_but_not_otherwise_changed() {
        assert_eq!(normalise_query(" caf\u{65}\u{301} "), "caf\u{e9}");
        assert_eq!(normalise_query("人\u{200B}工\u{0}智能\u{FEFF}"), "人工智能");
        assert_eq!(
            normalise_query("two  words\nand\ttabs"),
            "two  words\nand\ttabs"
        );
        assert_eq!(normalise_query("\u{200B}\u{200D}"), "");
    }
}
