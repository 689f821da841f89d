//! Which passages a search may return, as data: by document, article title, date and metadata.
//!
//! A [`Filter`] is handed to an index, which applies it before ranking (a filtered search still
//! returns `top_k` results when that many passages match), so the same filter can be evaluated
//! in memory here or translated for another engine.

use std::cmp::Ordering;

use serde_json::Value;

use crate::corpus::Passage;

/// A calendar day written `YYYY-MM-DD`, checked when parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// The passage's document (its id; for files, the path as results show it).
    pub document: Option<String>,
    /// Text the article title must contain; letters match in either case.
    pub title: Option<String>,
    /// First day admitted, inclusive. With either date bound, undated passages are excluded.
    pub date_from: Option<IsoDate>,
    /// Last day admitted, inclusive.
    pub date_to: Option<IsoDate>,
    /// Conditions on the document's metadata, all of which must hold.
    pub metadata: Vec<MetadataFilter>,
}

/// Conditions on metadata, combined.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataFilter {
    Field(MetadataCondition),
    /// Every one holds (none: true).
    All(Vec<MetadataFilter>),
    /// At least one holds (none: false).
    Any(Vec<MetadataFilter>),
    Not(Box<MetadataFilter>),
}

impl MetadataFilter {
    /// The conditions on single fields it is made of, in order.
    pub fn conditions(&self) -> Vec<&MetadataCondition> {
        match self {
            Self::Field(condition) => vec![condition],
            Self::All(filters) | Self::Any(filters) => {
                filters.iter().flat_map(Self::conditions).collect()
            }
            Self::Not(filter) => filter.conditions(),
        }
    }
}

/// A test of one metadata field.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataCondition {
    pub key: String,
    pub test: MetadataTest,
}

/// What a metadata field must be. A field holding a list of strings passes a value test when
/// any of its elements does; a field that is absent passes none.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataTest {
    /// Equal to this string, number or boolean.
    Equals(Scalar),
    /// Equal to one of these.
    In(Vec<Scalar>),
    /// A number within these bounds.
    Range(Bounds<f64>),
    /// A `YYYY-MM-DD` date (a longer ISO timestamp counts by its day) within these bounds.
    DateRange(Bounds<IsoDate>),
    /// A string containing this text; letters match in either case.
    Contains(String),
    /// A string starting with this text; letters match in either case.
    Prefix(String),
    /// A string ending with this text; letters match in either case.
    Suffix(String),
    /// Absent, an empty string or an empty list.
    Empty,
}

/// A value a metadata field is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    Number(f64),
    Bool(bool),
}

/// Lower and upper bounds, each inclusive or not, each optional.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounds<T> {
    pub lower: Option<(T, Inclusive)>,
    pub upper: Option<(T, Inclusive)>,
}

impl<T> Default for Bounds<T> {
    fn default() -> Self {
        Self {
            lower: None,
            upper: None,
        }
    }
}

/// Whether a bound admits the value equal to it.
pub type Inclusive = bool;

impl<T: PartialOrd> Bounds<T> {
    fn admits(&self, value: &T) -> bool {
        let above = self.lower.as_ref().is_none_or(|(bound, inclusive)| {
            matches!(value.partial_cmp(bound), Some(Ordering::Greater))
                || (*inclusive && value == bound)
        });
        let below = self.upper.as_ref().is_none_or(|(bound, inclusive)| {
            matches!(value.partial_cmp(bound), Some(Ordering::Less))
                || (*inclusive && value == bound)
        });
        above && below
    }

    /// Whether no value can pass: the lower bound above the upper, or equal without both
    /// inclusive.
    pub fn is_empty(&self) -> bool {
        match (&self.lower, &self.upper) {
            (Some((low, low_inclusive)), Some((high, high_inclusive))) => {
                match low.partial_cmp(high) {
                    Some(Ordering::Greater) | None => true,
                    Some(Ordering::Equal) => !(*low_inclusive && *high_inclusive),
                    Some(Ordering::Less) => false,
                }
            }
            _ => false,
        }
    }
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Prepares the filter for testing many passages: folds the texts compared without case
    /// once rather than once per passage.
    pub(crate) fn compile(&self) -> CompiledFilter<'_> {
        CompiledFilter {
            filter: self,
            title: self.title.as_deref().map(fold),
            metadata: self.metadata.iter().map(CompiledMetadata::new).collect(),
            empty: self.is_empty(),
        }
    }
}

/// A [`MetadataFilter`] with its texts folded.
enum CompiledMetadata<'a> {
    Field {
        condition: &'a MetadataCondition,
        /// The needle of a text test, folded.
        folded: Option<String>,
    },
    All(Vec<CompiledMetadata<'a>>),
    Any(Vec<CompiledMetadata<'a>>),
    Not(Box<CompiledMetadata<'a>>),
}

impl<'a> CompiledMetadata<'a> {
    fn new(filter: &'a MetadataFilter) -> Self {
        match filter {
            MetadataFilter::Field(condition) => Self::Field {
                condition,
                folded: match &condition.test {
                    MetadataTest::Contains(text)
                    | MetadataTest::Prefix(text)
                    | MetadataTest::Suffix(text) => Some(fold(text)),
                    _ => None,
                },
            },
            MetadataFilter::All(filters) => Self::All(filters.iter().map(Self::new).collect()),
            MetadataFilter::Any(filters) => Self::Any(filters.iter().map(Self::new).collect()),
            MetadataFilter::Not(filter) => Self::Not(Box::new(Self::new(filter))),
        }
    }

    fn accepts(&self, metadata: &serde_json::Map<String, Value>) -> bool {
        match self {
            Self::Field { condition, folded } => {
                let value = metadata.get(&condition.key);
                match &condition.test {
                    MetadataTest::Empty => value.is_none_or(is_empty_value),
                    test => value.is_some_and(|value| passes(test, folded.as_deref(), value)),
                }
            }
            Self::All(filters) => filters.iter().all(|f| f.accepts(metadata)),
            Self::Any(filters) => filters.iter().any(|f| f.accepts(metadata)),
            Self::Not(filter) => !filter.accepts(metadata),
        }
    }
}

fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// A [`Filter`] ready to test passages.
pub(crate) struct CompiledFilter<'a> {
    filter: &'a Filter,
    title: Option<String>,
    metadata: Vec<CompiledMetadata<'a>>,
    empty: bool,
}

impl CompiledFilter<'_> {
    /// `folded_title` is the passage's title as [`fold`] leaves it.
    pub(crate) fn accepts(&self, passage: &Passage, folded_title: Option<&str>) -> bool {
        if self.empty {
            return true;
        }
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
        self.metadata
            .iter()
            .all(|condition| condition.accepts(&passage.metadata))
    }
}

/// Whether `value` (a field's value, or an element of a list field) passes `test`.
fn passes(test: &MetadataTest, folded_needle: Option<&str>, value: &Value) -> bool {
    if let Value::Array(elements) = value {
        return elements
            .iter()
            .any(|element| !element.is_array() && passes(test, folded_needle, element));
    }
    match test {
        MetadataTest::Equals(scalar) => scalar.matches(value),
        MetadataTest::In(scalars) => scalars.iter().any(|scalar| scalar.matches(value)),
        MetadataTest::Range(bounds) => value.as_f64().is_some_and(|number| bounds.admits(&number)),
        MetadataTest::DateRange(bounds) => value
            .as_str()
            .and_then(|text| text.get(..10))
            .and_then(|day| IsoDate::try_from(day.to_owned()).ok())
            .is_some_and(|day| bounds.admits(&day)),
        MetadataTest::Contains(_) => value
            .as_str()
            .zip(folded_needle)
            .is_some_and(|(text, needle)| fold(text).contains(needle)),
        MetadataTest::Prefix(_) => value
            .as_str()
            .zip(folded_needle)
            .is_some_and(|(text, needle)| fold(text).starts_with(needle)),
        MetadataTest::Suffix(_) => value
            .as_str()
            .zip(folded_needle)
            .is_some_and(|(text, needle)| fold(text).ends_with(needle)),
        MetadataTest::Empty => is_empty_value(value),
    }
}

impl Scalar {
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Self::Text(expected), Value::String(found)) => expected == found,
            (Self::Number(expected), Value::Number(found)) => found.as_f64() == Some(*expected),
            (Self::Bool(expected), Value::Bool(found)) => expected == found,
            _ => false,
        }
    }
}

/// The form of a text that case-insensitive filters compare.
pub(crate) fn fold(text: &str) -> String {
    text.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{ArticleDate, ArticleMeta};

    fn passage(metadata: Value, date: Option<&str>) -> Passage {
        let mut passage = crate::corpus::passage_for_tests("doc", "p", "正文");
        passage.article = ArticleMeta {
            title: Some("Shanghai 科技".into()),
            date: date.map(ArticleDate::parse),
            ..ArticleMeta::default()
        };
        passage.metadata = metadata.as_object().cloned().unwrap_or_default();
        passage
    }

    fn accepts(filter: &Filter, passage: &Passage) -> bool {
        let title = passage.article.title.as_deref().map(fold);
        filter.compile().accepts(passage, title.as_deref())
    }

    fn field(key: &str, test: MetadataTest) -> MetadataFilter {
        MetadataFilter::Field(MetadataCondition {
            key: key.into(),
            test,
        })
    }

    fn on(key: &str, test: MetadataTest) -> Filter {
        Filter {
            metadata: vec![field(key, test)],
            ..Filter::default()
        }
    }

    fn day(text: &str) -> IsoDate {
        IsoDate::try_from(text.to_owned()).unwrap()
    }

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
    fn document_title_and_dates() {
        let p = passage(Value::Null, Some("2025-04-29"));
        let filter = |f: Filter| accepts(&f, &p);
        assert!(filter(Filter::default()));
        assert!(filter(Filter {
            document: Some("doc".into()),
            title: Some("shanghai".into()),
            date_from: Some(day("2025-04-29")),
            date_to: Some(day("2025-04-29")),
            ..Filter::default()
        }));
        assert!(!filter(Filter {
            document: Some("other".into()),
            ..Filter::default()
        }));
        assert!(!filter(Filter {
            date_from: Some(day("2025-04-30")),
            ..Filter::default()
        }));
        let undated = passage(Value::Null, None);
        assert!(!accepts(
            &Filter {
                date_to: Some(day("2030-01-01")),
                ..Filter::default()
            },
            &undated
        ));
    }

    #[test]
    fn metadata_tests() {
        let p = passage(
            serde_json::json!({
                "lang": "zh", "year": 2025, "draft": false,
                "tags": ["ai", "policy"], "published": "2025-04-29T08:00:00Z",
                "summary": "Visit to Xuhui"
            }),
            None,
        );
        let text = |s: &str| Scalar::Text(s.into());
        let yes = [
            on("lang", MetadataTest::Equals(text("zh"))),
            on("year", MetadataTest::Equals(Scalar::Number(2025.0))),
            on("draft", MetadataTest::Equals(Scalar::Bool(false))),
            on("tags", MetadataTest::Equals(text("policy"))),
            on("lang", MetadataTest::In(vec![text("en"), text("zh")])),
            on(
                "year",
                MetadataTest::Range(Bounds {
                    lower: Some((2020.0, true)),
                    upper: Some((2025.0, true)),
                }),
            ),
            on(
                "published",
                MetadataTest::DateRange(Bounds {
                    lower: Some((day("2025-04-29"), true)),
                    upper: None,
                }),
            ),
            on("summary", MetadataTest::Contains("xuhui".into())),
            on("tags", MetadataTest::Contains("POL".into())),
            on("summary", MetadataTest::Prefix("visit".into())),
            on("summary", MetadataTest::Suffix("XUHUI".into())),
            on("missing", MetadataTest::Empty),
            Filter {
                metadata: vec![MetadataFilter::Any(vec![
                    field("lang", MetadataTest::Equals(text("en"))),
                    field("year", MetadataTest::Equals(Scalar::Number(2025.0))),
                ])],
                ..Filter::default()
            },
            Filter {
                metadata: vec![MetadataFilter::Not(Box::new(field(
                    "tags",
                    MetadataTest::Equals(text("sports")),
                )))],
                ..Filter::default()
            },
        ];
        for filter in &yes {
            assert!(accepts(filter, &p), "{filter:?}");
        }
        let no = [
            on("lang", MetadataTest::Equals(text("en"))),
            on("year", MetadataTest::Equals(text("2025"))),
            on("missing", MetadataTest::Equals(text("zh"))),
            on(
                "year",
                MetadataTest::Range(Bounds {
                    lower: Some((2025.0, false)),
                    upper: None,
                }),
            ),
            on(
                "published",
                MetadataTest::DateRange(Bounds {
                    lower: None,
                    upper: Some((day("2025-04-28"), true)),
                }),
            ),
            on("year", MetadataTest::Contains("20".into())),
            on("summary", MetadataTest::Prefix("xuhui".into())),
            on("lang", MetadataTest::Empty),
            Filter {
                metadata: vec![MetadataFilter::Any(vec![])],
                ..Filter::default()
            },
            Filter {
                metadata: vec![MetadataFilter::Not(Box::new(field(
                    "tags",
                    MetadataTest::In(vec![text("ai")]),
                )))],
                ..Filter::default()
            },
        ];
        for filter in &no {
            assert!(!accepts(filter, &p), "{filter:?}");
        }
    }

    #[test]
    fn empty_bounds_are_recognised() {
        let bounds = |low: f64, low_inc, high: f64, high_inc| Bounds {
            lower: Some((low, low_inc)),
            upper: Some((high, high_inc)),
        };
        assert!(bounds(2.0, true, 1.0, true).is_empty());
        assert!(bounds(1.0, true, 1.0, false).is_empty());
        assert!(!bounds(1.0, true, 1.0, true).is_empty());
        assert!(!Bounds::<f64>::default().is_empty());
    }
}
