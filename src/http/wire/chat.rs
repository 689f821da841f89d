//! OpenAI's chat-completions format, so chat UIs and OpenAI's clients can use wenda as a model:
//! the model is a collection, the answer is wenda's (extractive or generative), with its
//! citations as `url_citation` annotations and a top-level `citations` array.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::answer::{AnswerCitation, TokenUsageView};
use crate::llm::{ChatMessage, Speaker};
use crate::service::{AnswerMode, AnswerRequest, DEFAULT_COLLECTION};

/// The model id naming the `default` collection; any other id names the collection itself.
pub const DEFAULT_MODEL: &str = "wenda";

/// Most messages one chat request may carry.
pub const MAX_MESSAGES: usize = 64;

/// `POST /v1/chat/completions` body. Fields of OpenAI's request that wenda does not use
/// (`temperature`, `max_tokens`, `n`, `user`, …) are accepted and ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatRequest {
    /// `wenda` for the `default` collection, or a collection's name (see `GET /v1/models`).
    #[schema(example = "wenda")]
    pub model: String,
    /// The conversation, oldest first, ending with the user's question. `content` is a
    /// string or an array of `{"type": "text", "text": …}` parts.
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<Value>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub stream_options: Option<Value>,
}

impl ChatRequest {
    /// The collection the model names.
    pub fn collection(&self) -> &str {
        if self.model == DEFAULT_MODEL {
            DEFAULT_COLLECTION
        } else {
            &self.model
        }
    }

    /// Whether the stream should end with a usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The question (the last message, the user's) and the conversation before it; an error
    /// names the field at fault.
    pub fn to_domain(&self) -> Result<AnswerRequest, String> {
        if self.messages.len() > MAX_MESSAGES {
            return Err(format!(
                "messages: at most {MAX_MESSAGES} messages are accepted, got {}",
                self.messages.len()
            ));
        }
        let mut conversation = Vec::with_capacity(self.messages.len());
        for (i, message) in self.messages.iter().enumerate() {
            conversation.push(read_message(i, message)?);
        }
        let Some(last) = conversation.pop() else {
            return Err("messages: the conversation is empty; send the user's question".into());
        };
        if last.speaker != Speaker::User {
            return Err(format!(
                "messages[{}].role: the last message must be the user's question, got {:?}",
                self.messages.len() - 1,
                last.speaker.as_str()
            ));
        }
        // The system prompt is the client's to the model; wenda's own instructions apply.
        conversation.retain(|m| m.speaker != Speaker::System);
        Ok(AnswerRequest {
            mode: AnswerMode::Auto,
            conversation,
            ..AnswerRequest::new(last.content)
        })
    }
}

fn read_message(i: usize, message: &Value) -> Result<ChatMessage, String> {
    let role = message
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("messages[{i}].role: missing, or not a string"))?;
    let speaker = match role {
        "user" => Speaker::User,
        "assistant" => Speaker::Assistant,
        "system" | "developer" => Speaker::System,
        other => {
            return Err(format!(
            "messages[{i}].role: {other:?} is not supported (user, assistant, system, developer)"
        ))
        }
    };
    let content = match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        // An assistant turn that only called tools says nothing.
        None | Some(Value::Null) if speaker == Speaker::Assistant => String::new(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let piece = part.get("text").and_then(Value::as_str).ok_or_else(|| {
                            format!("messages[{i}].content[{j}].text: missing, or not a string")
                        })?;
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(piece);
                    }
                    other => {
                        return Err(format!(
                        "messages[{i}].content[{j}].type: only text parts are supported, got {}",
                        other.map_or("none".to_owned(), |t| format!("{t:?}"))
                    ))
                    }
                }
            }
            text
        }
        _ => {
            return Err(format!(
                "messages[{i}].content: a string or an array of text parts is expected"
            ))
        }
    };
    Ok(ChatMessage { speaker, content })
}

/// Where an answer cites a source: OpenAI's `url_citation` annotation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UrlCitationAnnotation {
    /// Always `url_citation`.
    #[serde(rename = "type")]
    pub kind: String,
    pub url_citation: UrlCitation,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UrlCitation {
    /// The document's own `url`, or the passage on this server.
    pub url: String,
    pub title: String,
    /// Where the marker is in `content`, in Unicode code points: `[start, end)`.
    pub start_index: usize,
    pub end_index: usize,
}

/// The assistant's message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatResponseMessage {
    /// Always `assistant`.
    pub role: String,
    /// The answer with its `[n]` markers, or the refusal.
    pub content: String,
    pub annotations: Vec<UrlCitationAnnotation>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatChoice {
    pub index: usize,
    pub message: ChatResponseMessage,
    /// `stop`, or `length` when the LLM ran out of tokens.
    pub finish_reason: String,
}

/// `POST /v1/chat/completions` answer (not streamed).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    /// Tokens the LLM counted; zeros for an extractive answer, which uses none.
    pub usage: TokenUsageView,
    /// The passages `[n]` refers to, as in `POST /v1/answer`.
    pub citations: Vec<AnswerCitation>,
}

/// A model: the `default` collection as `wenda`, or a collection by its name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelView {
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix seconds: when the collection was created.
    pub created: i64,
    pub owned_by: String,
}

/// `GET /v1/models` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<ModelView>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(messages: Value) -> Result<AnswerRequest, String> {
        let body = json!({"model": "wenda", "messages": messages});
        serde_json::from_value::<ChatRequest>(body)
            .unwrap()
            .to_domain()
    }

    #[test]
    fn the_last_user_message_is_the_question_and_the_rest_the_conversation() {
        let answer = request(json!([
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "上海的GDP是多少？"},
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "user", "content": [{"type": "text", "text": "那北京呢？"}]},
        ]))
        .unwrap();
        assert_eq!(answer.question, "那北京呢？");
        let speakers: Vec<Speaker> = answer.conversation.iter().map(|m| m.speaker).collect();
        assert_eq!(speakers, [Speaker::User, Speaker::Assistant]);
    }

    #[test]
    fn refusals_name_the_field() {
        let error = |messages| request(messages).unwrap_err();
        assert!(error(json!([])).starts_with("messages:"));
        assert!(error(
            json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
        )
        .starts_with("messages[1].role"));
        assert!(error(
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])
        )
        .starts_with("messages[0].content[0].type"));
        assert!(error(json!([{"role": "tool", "content": "x"}])).starts_with("messages[0].role"));
        let many: Vec<Value> = (0..65)
            .map(|_| json!({"role": "user", "content": "a"}))
            .collect();
        assert!(error(Value::Array(many)).contains("at most 64"));
    }
}
