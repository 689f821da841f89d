//! A streamed chat completion: Server-Sent Events whose `data:` lines are completion chunks,
//! ended by `data: [DONE]`.

use std::io::{BufRead, BufReader, Read};

use serde_json::Value;

use super::{excerpt, Completion, Failure, TokenUsage};

/// Longest event line accepted: a chunk carries a few tokens, so a longer line is not a chunk.
const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads chunks from `body`, handing each piece of text to `on_delta`, until `[DONE]`, the end
/// of the body, or `on_delta` returning false.
pub(super) fn read(
    body: impl Read,
    on_delta: &mut dyn FnMut(&str) -> bool,
) -> Result<Completion, Failure> {
    let mut lines = BufReader::new(body.take(64 << 20));
    let mut completion = Completion::default();
    let mut chunks = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut lines)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut line)
            .map_err(Failure::Read)?;
        if read == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let Some(data) = text.trim_end().strip_prefix("data:") else {
            // Comments, `event:` and `id:` lines, and the blank lines between events.
            continue;
        };
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(completion);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|_| Failure::NotACompletion {
            status: 200,
            excerpt: excerpt(data),
        })?;
        if chunk.get("error").is_some() {
            return Err(Failure::UpstreamError(excerpt(data)));
        }
        chunks += 1;
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            completion.usage = serde_json::from_value::<TokenUsage>(usage.clone()).ok();
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            continue;
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            completion.finish_reason = Some(reason.to_owned());
        }
        let delta = choice
            .get("delta")
            .and_then(|d| d.get("content"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !delta.is_empty() {
            completion.text.push_str(delta);
            if !on_delta(delta) {
                completion.finish_reason = Some("cancelled".into());
                return Ok(completion);
            }
        }
    }
    if chunks == 0 {
        return Err(Failure::NotACompletion {
            status: 200,
            excerpt: "an event stream with no chunk".into(),
        });
    }
    // Some servers close the stream without `[DONE]`; what came is the answer.
    Ok(completion)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(body: &str) -> (Result<Completion, Failure>, Vec<String>) {
        let mut pieces = Vec::new();
        let result = read(body.as_bytes(), &mut |d| {
            pieces.push(d.to_owned());
            true
        });
        (result, pieces)
    }

    #[test]
    fn chunks_are_joined_and_usage_kept() {
        let body = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
            : keep-alive\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"上海\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"[1]\"},\"finish_reason\":\"stop\"}]}\n\n\
            data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3}}\n\n\
            data: [DONE]\n\n";
        let (completion, pieces) = collect(body);
        let completion = completion.unwrap();
        assert_eq!(completion.text, "上海[1]");
        assert_eq!(pieces, ["上海", "[1]"]);
        assert_eq!(completion.finish_reason.as_deref(), Some("stop"));
        assert_eq!(completion.usage.unwrap().prompt_tokens, 9);
    }

    #[test]
    fn errors_and_garbage_are_failures() {
        let (result, _) = collect("data: {\"error\":{\"message\":\"overloaded\"}}\n\n");
        assert!(matches!(result, Err(Failure::UpstreamError(e)) if e.contains("overloaded")));
        let (result, _) = collect("data: <html>\n\n");
        assert!(matches!(result, Err(Failure::NotACompletion { .. })));
        let (result, _) = collect("");
        assert!(matches!(result, Err(Failure::NotACompletion { .. })));
    }

    #[test]
    fn a_reader_that_leaves_stops_the_stream() {
        let body = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n";
        let completion = read(body.as_bytes(), &mut |_| false).unwrap();
        assert_eq!(completion.text, "a");
        assert_eq!(completion.finish_reason.as_deref(), Some("cancelled"));
    }
}
