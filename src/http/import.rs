//! The import route's body: NDJSON (one document per line) or a multipart upload of files of
//! the formats wenda reads ([`Formats::standard`]), split into the lines of an import job. A
//! JSON-lines file brings its lines; any other file is one document, named after the file.

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;

use super::ApiError;
use crate::corpus::formats::Formats;
use crate::corpus::Layout;
use crate::service::{DocumentLine, ErrorCode, ImportLine, ServiceError};

/// The lines of an import request's body.
pub(super) async fn import_lines(
    request: Request,
    limit: usize,
) -> Result<Vec<ImportLine>, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
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
    let extracted = match format.extract(bytes) {
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
