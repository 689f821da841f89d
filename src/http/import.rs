//! Bodies that bring documents. The import route's: NDJSON (one document per line) or a
//! multipart upload of files of the formats wenda reads ([`Formats::standard`]), split into the
//! lines of an import job; a JSON-lines file brings its lines, any other file is one document,
//! named after the file. And a document's own (`PUT …/documents/{id}`): JSON, or a file.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use serde_json::Map;

use super::error::Body;
use super::wire::{DocumentBody, DocumentFileQuery};
use super::ApiError;
use encoding_rs::Encoding;

use crate::corpus::formats::{media_type, Extracted, Formats};
use crate::corpus::Layout;
use crate::service::{DocumentLine, ErrorCode, ImportLine, NewDocument, ServiceError};

/// The request's `Content-Type`, empty when it has none (or one that is not text).
fn content_type(request: &Request) -> String {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The lines of an import request's body.
pub(super) async fn import_lines(
    request: Request,
    limit: usize,
) -> Result<Vec<ImportLine>, ApiError> {
    let media_type = media_type(&content_type(&request));
    if media_type == "multipart/form-data" {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|rejection| ApiError::new(ErrorCode::BadRequest, rejection.body_text()))?;
        let mut lines = Vec::new();
        while let Some(field) = form.next_field().await.map_err(multipart_error)? {
            let Some(name) = field.file_name().map(str::to_owned) else {
                continue;
            };
            let bytes = field.bytes().await.map_err(multipart_error)?;
            lines.extend(file_lines(&name, &bytes)?);
        }
        if lines.is_empty() {
            return Err(ApiError::invalid(format!(
                "the upload has no file: send files ({}) as form fields with a filename",
                Formats::standard().extension_list()
            )));
        }
        return Ok(lines);
    }
    let ndjson = media_type == "application/json"
        || Formats::standard()
            .by_media_type(&media_type)
            .is_some_and(|format| format.name() == "jsonl");
    if !ndjson {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send NDJSON (`Content-Type: application/x-ndjson`, one document per line) or files \
             as `multipart/form-data`",
        ));
    }
    let bytes = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|error| {
            ApiError::from_body_error(&error, format!("the body is over {limit} bytes"))
        })?;
    Ok(json_lines(None, utf8(&bytes)?))
}

fn multipart_error(error: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::from_body_error(&error, error.body_text())
}

/// The body as text (JSON is UTF-8) without the byte-order mark editors on Windows put first
/// (it would make line 1 malformed JSON), or a 422 naming where it stops being UTF-8.
fn utf8(bytes: &[u8]) -> Result<&str, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        let offset = error.valid_up_to();
        let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        ApiError::invalid(format!(
            "not UTF-8 at line {line} (byte {offset}); convert the text to UTF-8"
        ))
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// The document a `PUT …/documents/{id}` body holds: a JSON [`DocumentBody`], or a file of a
/// format wenda reads with its fields in the query string.
pub(super) async fn document_body(
    id: &str,
    fields: DocumentFileQuery,
    request: Request,
) -> Result<NewDocument, ApiError> {
    let content_type = content_type(&request);
    let media_type = media_type(&content_type);
    if media_type.is_empty() || media_type == "application/json" {
        if !fields.is_empty() {
            return Err(ApiError::invalid(
                "the query string's fields are for a document sent as a file: give them in the \
                 JSON body",
            ));
        }
        let Body(body) = Body::<DocumentBody>::from_request(request, &()).await?;
        return Ok(NewDocument {
            text: body.text,
            layout: body.format.into(),
            title: body.title,
            date: body.date,
            source: body.source,
            url: body.url,
            metadata: body.metadata.unwrap_or_default(),
        });
    }
    let bytes = Bytes::from_request(request, &())
        .await
        .map_err(|rejection| ApiError::from_body_error(&rejection, rejection.body_text()))?;
    let extracted = file_document(&content_type, id, &bytes)?;
    let metadata = match fields.metadata {
        None => Map::new(),
        Some(json) => serde_json::from_str::<Map<String, serde_json::Value>>(&json)
            .map_err(|error| ApiError::invalid(format!("metadata: not a JSON object: {error}")))?,
    };
    Ok(NewDocument {
        text: extracted.text,
        layout: fields.format.map_or(extracted.layout, Into::into),
        title: fields.title,
        date: fields.date,
        source: fields.source,
        url: fields.url,
        metadata,
    })
}

/// The document a request body that is not JSON holds: a file whose format is its media type's,
/// or for `application/octet-stream` the one its first bytes or `id`'s extension say; a
/// `charset` parameter is the text's encoding.
fn file_document(content_type: &str, id: &str, bytes: &[u8]) -> Result<Extracted, ApiError> {
    let formats = Formats::standard();
    let format = if media_type(content_type) == "application/octet-stream" {
        formats.sniff(bytes).or_else(|| formats.by_file_name(id))
    } else {
        formats.by_media_type(content_type)
    };
    let format = format.ok_or_else(|| {
        let types: Vec<&str> = formats
            .all()
            .flat_map(|f| f.media_types())
            .copied()
            .collect();
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "{content_type:?} is not a document format: send JSON (`application/json`), a \
                 file as one of {}, or `application/octet-stream` with the format's extension \
                 on the document id ({})",
                types.join(", "),
                formats.extension_list()
            ),
        )
    })?;
    let charset = charset(content_type)?;
    let mut extracted = format
        .extract(bytes, charset)
        .map_err(|error| ServiceError::UnreadableDocument(error.to_string()))?;
    // The document is the text, not the file: a byte-order mark is no part of it.
    if extracted.text.starts_with('\u{feff}') {
        extracted.text.remove(0);
    }
    Ok(extracted)
}

/// The encoding a `charset` parameter of `content_type` names, or a 415 when it names none.
fn charset(content_type: &str) -> Result<Option<&'static Encoding>, ApiError> {
    let Some(label) = content_type.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"'))
    }) else {
        return Ok(None);
    };
    Encoding::for_label(label.as_bytes())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("charset {label:?} is not a known character encoding"),
            )
        })
}

/// The non-blank lines of NDJSON text, numbered from 1.
fn json_lines(file: Option<&str>, text: &str) -> Vec<ImportLine> {
    text.split('\n')
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| ImportLine {
            file: file.map(str::to_owned),
            line: index + 1,
            body: Ok(line.trim_end_matches('\r').to_owned()),
        })
        .collect()
}

/// The lines one uploaded file brings: each line of a JSON-lines file, or the whole of any
/// other file as one document. A file that is not of its format is one refused line, so the
/// rest of the upload is still imported.
fn file_lines(name: &str, bytes: &[u8]) -> Result<Vec<ImportLine>, ApiError> {
    let formats = Formats::standard();
    let format = formats.by_file_name(name).ok_or_else(|| {
        ApiError::invalid(format!(
            "{name}: unsupported file type; upload {}",
            formats.extension_list()
        ))
    })?;
    let extracted = match format.extract(bytes, None) {
        Ok(extracted) => extracted,
        Err(error) => {
            return Ok(vec![ImportLine {
                file: Some(name.to_owned()),
                line: 1,
                body: Err(ServiceError::UnreadableDocument(format!("{name}: {error}"))),
            }])
        }
    };
    // The document is the text, not the file: a byte-order mark is no part of it.
    let text = extracted
        .text
        .strip_prefix('\u{feff}')
        .unwrap_or(&extracted.text);
    if extracted.layout == Layout::Jsonl {
        return Ok(json_lines(Some(name), text));
    }
    let document = DocumentLine {
        id: name.to_owned(),
        text: text.to_owned(),
        title: None,
        date: None,
        source: None,
        url: None,
        metadata: serde_json::Map::new(),
        format: Some(extracted.layout.as_str().into()),
    };
    Ok(vec![ImportLine {
        file: Some(name.to_owned()),
        line: 1,
        body: Ok(serde_json::to_string(&document).expect("a document line serialises")),
    }])
}
