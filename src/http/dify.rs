//! Dify's External Knowledge API at `/dify/retrieval`: register `http://host:port/dify` in Dify as
//! an external knowledge base, with a collection name as its knowledge id. Requests and answers
//! keep Dify's shapes, errors included (`{"error_code", "error_msg"}`: 1001 a malformed
//! `Authorization` header, 1002 a key that is not valid, 2001 no such knowledge base); the search
//! itself is the service's, hybrid ranking and all.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::auth::Refusal;
use super::{ApiError, AppState};
use crate::index::{
    Bounds, Filter, IsoDate, MetadataCondition, MetadataFilter, MetadataTest, Scalar,
};
use crate::search::MAX_TOP_K;
use crate::service::{ErrorCode, SearchRequest, ServiceError};

/// Dify's retrieval request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RetrievalRequest {
    /// The external knowledge id entered in Dify: a wenda collection name.
    #[schema(example = "default")]
    pub knowledge_id: String,
    /// The user's question.
    #[schema(example = "模速空间在哪个区？")]
    pub query: String,
    pub retrieval_setting: RetrievalSetting,
    /// Conditions on document metadata (Dify sends them only from its API).
    #[serde(default)]
    pub metadata_condition: Option<DifyMetadataCondition>,
}

/// How many records, and how good.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RetrievalSetting {
    /// Most records to return (1 to 100).
    pub top_k: usize,
    /// Records scoring below this are left out (0 when Dify's threshold is off).
    #[serde(default)]
    pub score_threshold: f32,
}

/// Dify's metadata conditions.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DifyMetadataCondition {
    /// `and` (default) or `or`.
    #[serde(default)]
    pub logical_operator: Option<String>,
    pub conditions: Vec<DifyCondition>,
}

/// One of Dify's conditions.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DifyCondition {
    /// The field, or fields (any may match).
    #[schema(value_type = Object)]
    pub name: Value,
    /// `contains`, `not contains`, `start with`, `end with`, `is`, `is not`, `in`, `not in`,
    /// `empty`, `not empty`, `=`, `≠`, `>`, `<`, `≥`, `≤`, `before`, `after`.
    pub comparison_operator: String,
    /// What to compare with; absent for `empty` and `not empty`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub value: Option<Value>,
}

/// Dify's retrieval answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetrievalResponse {
    pub records: Vec<Record>,
}

/// One passage, as Dify takes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Record {
    /// The passage text.
    pub content: String,
    /// Hybrid score: `0.8 × cosine + 0.2 × lexical`.
    pub score: f32,
    /// The article title (the document id when there is none).
    pub title: String,
    /// Where to cite it from: `document`, `passage_id`, `date`, `source`, `url`, `line_start`,
    /// `line_end`, `page_start` and `page_end` (documents with pages), and the document's own
    /// metadata. Never null, and no field in it is.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// Dify's error shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct DifyError {
    pub error_code: u16,
    pub error_msg: String,
}

impl DifyError {
    fn response(status: StatusCode, error_code: u16, message: impl Into<String>) -> Response {
        (
            status,
            Json(Self {
                error_code,
                error_msg: message.into(),
            }),
        )
            .into_response()
    }
}

/// A request the route's access guard refuses, in Dify's form: 1001 when `Authorization` is
/// not `Bearer <key>`, 1002 when the key it carries is not good enough.
pub fn refuse(refusal: Refusal, headers: &HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()
        });
    if bearer || refusal == Refusal::ReadOnly {
        DifyError::response(StatusCode::FORBIDDEN, 1002, "Authorization failed")
    } else {
        DifyError::response(
            StatusCode::FORBIDDEN,
            1001,
            "Invalid Authorization header format. Expected 'Bearer <api-key>' format.",
        )
    }
}

/// Dify's error for an API error: its own codes for an unknown knowledge base, the HTTP status
/// as the code otherwise.
fn dify_error(error: ApiError) -> Response {
    let code = match error.code {
        ErrorCode::UnknownCollection | ErrorCode::InvalidName => 2001,
        _ => error.status.as_u16(),
    };
    DifyError::response(error.status, code, error.message)
}

/// Dify's External Knowledge API: the passages of a collection that answer a query.
#[utoipa::path(post, path = "/dify/retrieval", tag = "dify", operation_id = "difyRetrieval",
    request_body = RetrievalRequest, responses(
    (status = 200, description = "The records, best first.", body = RetrievalResponse),
    (status = 403, description = "1001: malformed `Authorization` header; 1002: not a valid key.", body = DifyError),
    (status = 404, description = "2001: no collection has this knowledge id.", body = DifyError),
    (status = 422, description = "The request is not Dify's retrieval request.", body = DifyError),
))]
pub async fn retrieval(
    State(state): State<Arc<AppState>>,
    body: Result<Json<RetrievalRequest>, JsonRejection>,
) -> Response {
    let answered = async {
        let Json(request) = body.map_err(ApiError::from)?;
        let service = state.service()?;
        let top_k = request.retrieval_setting.top_k.clamp(1, MAX_TOP_K);
        let metadata = request
            .metadata_condition
            .map(metadata_filter)
            .transpose()
            .map_err(ApiError::invalid)?;
        let threshold = request.retrieval_setting.score_threshold;
        let search = SearchRequest {
            top_k: Some(top_k),
            min_score: (threshold > 0.0).then_some(threshold.min(1.0)),
            filter: Filter {
                metadata: metadata.into_iter().collect(),
                ..Filter::default()
            },
            highlight: false,
            ..SearchRequest::new(request.query)
        };
        let outcome = service
            .search(&request.knowledge_id, search)
            .await
            .map_err(|error| match error {
                ServiceError::InvalidName(_) => {
                    ServiceError::UnknownCollection(request.knowledge_id.clone())
                }
                other => other,
            })?;
        Ok::<_, ApiError>(RetrievalResponse {
            records: outcome.results.into_iter().map(record).collect(),
        })
    };
    match answered.await {
        Ok(response) => Json(response).into_response(),
        Err(error) => dify_error(error),
    }
}

fn record(hit: crate::service::SearchHit) -> Record {
    let passage = &hit.ranked.passage;
    let article = &passage.article;
    let mut metadata = passage.metadata.clone();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            metadata.insert(key.to_owned(), value);
        }
    };
    put("document", Some(passage.citation.path.clone().into()));
    put("passage_id", Some(passage.id.as_str().into()));
    put("date", article.date.as_ref().map(|d| d.label().into()));
    put("source", article.source.clone().map(Value::from));
    put("url", article.url.clone().map(Value::from));
    put("line_start", Some(passage.citation.line_start.into()));
    put("line_end", Some(passage.citation.line_end.into()));
    put("page_start", passage.citation.page_start.map(Value::from));
    put("page_end", passage.citation.page_end.map(Value::from));
    metadata.retain(|_, value| !value.is_null());
    Record {
        content: passage.text.clone(),
        score: hit.ranked.score,
        title: article
            .title
            .clone()
            .unwrap_or_else(|| passage.citation.path.clone()),
        metadata,
    }
}

/// Dify's conditions as a metadata filter.
fn metadata_filter(condition: DifyMetadataCondition) -> Result<MetadataFilter, String> {
    let filters = condition
        .conditions
        .into_iter()
        .map(dify_condition)
        .collect::<Result<Vec<_>, _>>()?;
    match condition.logical_operator.as_deref().unwrap_or("and") {
        "and" => Ok(MetadataFilter::All(filters)),
        "or" => Ok(MetadataFilter::Any(filters)),
        other => Err(format!(
            "logical_operator {other:?} is not \"and\" or \"or\""
        )),
    }
}

fn dify_condition(condition: DifyCondition) -> Result<MetadataFilter, String> {
    let names: Vec<String> = match condition.name {
        Value::String(name) => vec![name],
        Value::Array(names) => names
            .into_iter()
            .map(|name| match name {
                Value::String(name) => Ok(name),
                other => Err(format!("a condition name must be a string, not {other}")),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(format!("a condition name must be a string, not {other}")),
    };
    let operator = condition.comparison_operator.as_str();
    let value = condition.value.unwrap_or(Value::Null);
    let text = || match &value {
        Value::String(text) => Ok(text.clone()),
        other => Err(format!("{operator:?} compares with a string, not {other}")),
    };
    let number = || {
        value
            .as_f64()
            .or_else(|| value.as_str().and_then(|t| t.trim().parse().ok()))
            .ok_or_else(|| format!("{operator:?} compares with a number, not {value}"))
    };
    let day = || {
        let text = text()?;
        IsoDate::try_from(text.get(..10).unwrap_or(&text).to_owned())
    };
    let scalar = |value: &Value| match value {
        Value::String(text) => Ok(Scalar::Text(text.clone())),
        Value::Number(n) => Ok(Scalar::Number(n.as_f64().unwrap_or(f64::NAN))),
        Value::Bool(flag) => Ok(Scalar::Bool(*flag)),
        other => Err(format!("{operator:?} compares with a value, not {other}")),
    };
    let list = || match &value {
        Value::Array(items) => items.iter().map(scalar).collect::<Result<Vec<_>, _>>(),
        Value::String(text) => Ok(text
            .split(',')
            .map(|t| Scalar::Text(t.trim().into()))
            .collect()),
        other => Err(format!("{operator:?} takes a list, not {other}")),
    };
    let range = |lower: Option<(f64, bool)>, upper: Option<(f64, bool)>| {
        MetadataTest::Range(Bounds { lower, upper })
    };
    let (test, negated) = match operator {
        "contains" => (MetadataTest::Contains(text()?), false),
        "not contains" => (MetadataTest::Contains(text()?), true),
        "start with" => (MetadataTest::Prefix(text()?), false),
        "end with" => (MetadataTest::Suffix(text()?), false),
        "is" => (MetadataTest::Equals(scalar(&value)?), false),
        "is not" => (MetadataTest::Equals(scalar(&value)?), true),
        "in" => (MetadataTest::In(list()?), false),
        "not in" => (MetadataTest::In(list()?), true),
        "empty" | "null" => (MetadataTest::Empty, false),
        "not empty" | "not null" => (MetadataTest::Empty, true),
        "=" => (MetadataTest::Equals(Scalar::Number(number()?)), false),
        "≠" | "!=" => (MetadataTest::Equals(Scalar::Number(number()?)), true),
        ">" => (range(Some((number()?, false)), None), false),
        "<" => (range(None, Some((number()?, false))), false),
        "≥" | ">=" => (range(Some((number()?, true)), None), false),
        "≤" | "<=" => (range(None, Some((number()?, true))), false),
        "before" => (
            MetadataTest::DateRange(Bounds {
                lower: None,
                upper: Some((day()?, false)),
            }),
            false,
        ),
        "after" => (
            MetadataTest::DateRange(Bounds {
                lower: Some((day()?, false)),
                upper: None,
            }),
            false,
        ),
        other => {
            return Err(format!(
                "comparison_operator {other:?} is not one Dify defines"
            ))
        }
    };
    let fields: Vec<MetadataFilter> = names
        .into_iter()
        .map(|key| {
            MetadataFilter::Field(MetadataCondition {
                key,
                test: test.clone(),
            })
        })
        .collect();
    let any = MetadataFilter::Any(fields);
    Ok(if negated {
        MetadataFilter::Not(Box::new(any))
    } else {
        any
    })
}
