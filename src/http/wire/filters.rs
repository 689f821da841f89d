//! A search's filter, and its translation into the index's conditions.

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::index::{
    Bounds, Filter, IsoDate, MetadataCondition, MetadataFilter, MetadataTest, Scalar,
};

/// Conditions a passage must meet, all of them, to be ranked.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Filter)]
pub struct FilterBody {
    /// The passage's document: its id (for files, the path exactly as results show it).
    #[serde(default)]
    pub document: Option<String>,
    /// Text the article title must contain; letters match in either case.
    #[serde(default)]
    pub title: Option<String>,
    /// First day admitted, `YYYY-MM-DD`, inclusive. With either date bound, undated passages are
    /// excluded.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date, example = "2025-04-26")]
    pub date_from: Option<String>,
    /// Last day admitted, `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub date_to: Option<String>,
    /// Conditions on document metadata, all of which must hold, by field: a value (equal to
    /// it; for a list field, containing it), a list of values (equal to one), or an object with
    /// one kind of test: `{"in": [...]}`, number bounds `{"gt"|"gte"|"lt"|"lte": n}`, day
    /// bounds `{"date_from"|"date_to": "YYYY-MM-DD"}` (inclusive; an ISO timestamp counts by
    /// its day), or `{"contains": "text"}` (either case).
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"lang": "zh", "year": {"gte": 2024}, "tags": {"in": ["ai", "policy"]}}))]
    pub metadata: Option<Map<String, Value>>,
}

impl FilterBody {
    pub fn into_domain(self) -> Result<Filter, String> {
        let date = |text: Option<String>| text.map(IsoDate::try_from).transpose();
        Ok(Filter {
            document: self.document,
            title: self.title,
            date_from: date(self.date_from)?,
            date_to: date(self.date_to)?,
            metadata: self
                .metadata
                .unwrap_or_default()
                .into_iter()
                .map(|(key, test)| metadata_condition(key, test).map(MetadataFilter::Field))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// One metadata condition as the wire writes it.
fn metadata_condition(key: String, test: Value) -> Result<MetadataCondition, String> {
    let scalar = |value: &Value| -> Result<Scalar, String> {
        match value {
            Value::String(text) => Ok(Scalar::Text(text.clone())),
            Value::Bool(flag) => Ok(Scalar::Bool(*flag)),
            Value::Number(number) => number
                .as_f64()
                .map(Scalar::Number)
                .ok_or_else(|| format!("metadata filter {key:?}: {number} is out of range")),
            other => Err(format!(
                "metadata filter {key:?}: expected a string, number or boolean, found {other}"
            )),
        }
    };
    let test = match &test {
        Value::Array(values) => {
            MetadataTest::In(values.iter().map(scalar).collect::<Result<_, _>>()?)
        }
        Value::Object(operators) => {
            let kinds: Vec<&str> = operators.keys().map(String::as_str).collect();
            match kinds.as_slice() {
                ["in"] => match &operators["in"] {
                    Value::Array(values) => {
                        MetadataTest::In(values.iter().map(scalar).collect::<Result<_, _>>()?)
                    }
                    _ => return Err(format!("metadata filter {key:?}: \"in\" takes a list")),
                },
                ["contains"] => match &operators["contains"] {
                    Value::String(text) => MetadataTest::Contains(text.clone()),
                    _ => {
                        return Err(format!(
                            "metadata filter {key:?}: \"contains\" takes a string"
                        ))
                    }
                },
                _ if !kinds.is_empty()
                    && kinds.iter().all(|k| ["gt", "gte", "lt", "lte"].contains(k)) =>
                {
                    let number = |name: &str| -> Result<Option<f64>, String> {
                        operators
                            .get(name)
                            .map(|v| {
                                v.as_f64().ok_or_else(|| {
                                    format!("metadata filter {key:?}: \"{name}\" takes a number")
                                })
                            })
                            .transpose()
                    };
                    MetadataTest::Range(
                        bounds(number("gt")?, number("gte")?, number("lt")?, number("lte")?)
                            .map_err(|e| format!("metadata filter {key:?}: {e}"))?,
                    )
                }
                _ if !kinds.is_empty()
                    && kinds.iter().all(|k| ["date_from", "date_to"].contains(k)) =>
                {
                    let day = |name: &str| -> Result<Option<IsoDate>, String> {
                        operators
                            .get(name)
                            .map(|v| match v {
                                Value::String(text) => IsoDate::try_from(text.clone()),
                                _ => Err(format!("\"{name}\" takes a date YYYY-MM-DD")),
                            })
                            .transpose()
                            .map_err(|e| format!("metadata filter {key:?}: {e}"))
                    };
                    MetadataTest::DateRange(Bounds {
                        lower: day("date_from")?.map(|d| (d, true)),
                        upper: day("date_to")?.map(|d| (d, true)),
                    })
                }
                _ => {
                    return Err(format!(
                        "metadata filter {key:?}: use one of \"in\", \"contains\", \
                         \"gt\"/\"gte\"/\"lt\"/\"lte\" or \"date_from\"/\"date_to\", not {kinds:?}"
                    ))
                }
            }
        }
        value => MetadataTest::Equals(scalar(value)?),
    };
    Ok(MetadataCondition { key, test })
}

/// Number bounds from the four comparison operators (at most one lower and one upper).
fn bounds(
    gt: Option<f64>,
    gte: Option<f64>,
    lt: Option<f64>,
    lte: Option<f64>,
) -> Result<Bounds<f64>, String> {
    let one =
        |exclusive: Option<f64>, inclusive: Option<f64>, side: &str| match (exclusive, inclusive) {
            (Some(_), Some(_)) => Err(format!("give one {side} bound, not both")),
            (Some(value), None) => Ok(Some((value, false))),
            (None, Some(value)) => Ok(Some((value, true))),
            (None, None) => Ok(None),
        };
    Ok(Bounds {
        lower: one(gt, gte, "lower")?,
        upper: one(lt, lte, "upper")?,
    })
}
