//! Restrictions on which passages a search may return: by document, article title and date.

use serde::{Deserialize, Serialize};

use crate::corpus::Passage;

/// A calendar day written `YYYY-MM-DD`, checked when parsed.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, format = Date, example = "2025-04-26")]
pub struct IsoDate(String);

impl TryFrom<String> for IsoDate {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let invalid = || format!("{text:?} is not a date in the form YYYY-MM-DD");
        let bytes = text.as_bytes();
        let digits_at = |range: std::ops::Range<usize>| {
            bytes[range.clone()]
                .iter()
                .all(u8::is_ascii_digit)
                .then(|| text[range].parse::<u32>().ok())
                .flatten()
        };
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(invalid());
        }
        let (Some(year), Some(month), Some(day)) =
            (digits_at(0..4), digits_at(5..7), digits_at(8..10))
        else {
            return Err(invalid());
        };
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(invalid()),
        };
        if !(1..=days_in_month).contains(&day) {
            return Err(invalid());
        }
        Ok(Self(text))
    }
}

impl From<IsoDate> for String {
    fn from(date: IsoDate) -> String {
        date.0
    }
}

impl IsoDate {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Conditions a passage must meet, all of them, to be ranked. The default admits everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// The passage's document path, exactly as results show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    /// Text the article title must contain; Latin letters match in either case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// First day admitted, inclusive. With either date bound, undated passages are excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_from: Option<IsoDate>,
    /// Last day admitted, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_to: Option<IsoDate>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Prepares the filter for testing many passages.
    pub(crate) fn compile(&self) -> CompiledFilter<'_> {
        CompiledFilter {
            filter: self,
            title: self.title.as_deref().map(str::to_lowercase),
        }
    }
}

/// A [`Filter`] with its title folded once rather than once per passage.
pub(crate) struct CompiledFilter<'a> {
    filter: &'a Filter,
    title: Option<String>,
}

impl CompiledFilter<'_> {
    /// `folded_title` is the passage's title lower-cased (see [`fold_title`]).
    pub(crate) fn accepts(&self, passage: &Passage, folded_title: Option<&str>) -> bool {
        let filter = self.filter;
        if filter
            .document
            .as_ref()
            .is_some_and(|document| *document != passage.citation.path)
        {
            return false;
        }
        if let Some(needle) = &self.title {
            if !folded_title.is_some_and(|title| title.contains(needle.as_str())) {
                return false;
            }
        }
        if filter.date_from.is_some() || filter.date_to.is_some() {
            let Some(day) = passage.article.date.as_ref().and_then(|d| d.iso.as_deref()) else {
                return false;
            };
            // ISO days order as strings.
            if filter
                .date_from
                .as_ref()
                .is_some_and(|from| day < from.as_str())
                || filter.date_to.as_ref().is_some_and(|to| day > to.as_str())
            {
                return false;
            }
        }
        true
    }
}

/// The form of a title that title filters match against.
pub(crate) fn fold_title(title: &str) -> String {
    title.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_validated() {
        for good in ["2025-04-25", "2024-02-29", "1999-12-31"] {
            assert!(IsoDate::try_from(good.to_string()).is_ok(), "{good}");
        }
        for bad in [
            "2025-4-25",
            "2025-02-29",
            "2025-13-01",
            "2025-00-10",
            "2025/04/25",
            "2025-04-31",
            "２０２５-04-25",
            "",
        ] {
            assert!(IsoDate::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = serde_json::from_str::<Filter>(r#"{"titel": "x"}"#).unwrap_err();
        assert!(error.to_string().contains("titel"), "{error}");
    }
}
