//! The LLM that writes generative answers: any server speaking OpenAI's chat-completions
//! protocol (vLLM, Ollama, llama.cpp's server, the DeepSeek, Qwen or OpenAI APIs).
//!
//! Calls block (they run on the runtime's blocking threads, so a slow upstream holds no
//! embedding slot and no async worker) and are bounded by one deadline for the whole call,
//! connection, generation and reading included. Failures come back as one of three kinds a
//! client can act on, each with the upstream's status and a short excerpt of what it said.
//! The API key is sent as a bearer token and never printed: [`LlmConfig`]'s `Debug` hides it.

mod stream;

use std::io::Read;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

/// Characters of an upstream's answer quoted in an error.
const EXCERPT_CHARS: usize = 200;

/// Where the LLM is and how it is asked.
#[derive(Clone)]
pub struct LlmConfig {
    /// The server's OpenAI base URL, `/v1` included (`http://127.0.0.1:8000/v1`).
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    /// Longest a whole call may take.
    pub timeout: Duration,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<hidden>"))
            .field("timeout", &self.timeout)
            .field("max_tokens", &self.max_tokens)
            .field("temperature", &self.temperature)
            .finish()
    }
}

/// Who says a message of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    System,
    User,
    Assistant,
}

impl Speaker {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub speaker: Speaker,
    pub content: String,
}

impl ChatMessage {
    pub fn new(speaker: Speaker, content: impl Into<String>) -> Self {
        Self {
            speaker,
            content: content.into(),
        }
    }
}

/// Tokens the upstream counted for a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct TokenUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// What the LLM wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    pub text: String,
    /// `stop`, `length`, …, as the upstream said; absent when it did not.
    pub finish_reason: Option<String>,
    pub usage: Option<TokenUsage>,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// Not reachable, or it answered with an error status.
    #[error("the LLM at {0}")]
    Unavailable(String),
    /// No complete answer within the timeout.
    #[error("the LLM at {0}")]
    Timeout(String),
    /// It answered, but not with a chat completion.
    #[error("the LLM at {0}")]
    Invalid(String),
}

/// A client of one chat-completions endpoint.
pub struct LlmClient {
    config: LlmConfig,
    endpoint: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.config.fmt(f)
    }
}

impl LlmClient {
    /// Checks the base URL; nothing is sent until the first call.
    pub fn new(config: LlmConfig) -> Result<Self, String> {
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "the LLM base URL must start with http:// or https://, got {:?}",
                config.base_url
            ));
        }
        if config.model.trim().is_empty() {
            return Err("the LLM model name is empty".into());
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(config.timeout.min(Duration::from_secs(10)))
            .timeout(config.timeout)
            .build();
        Ok(Self {
            endpoint: format!("{base}/chat/completions"),
            config,
            agent,
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Asks for a completion of `messages`, at most `max_tokens` long (the configured bound
    /// when `None`). With `on_delta`, the answer is streamed: each piece of text is handed to
    /// it as it comes, and the call stops early when it returns false (the reader went away).
    pub fn complete(
        &self,
        messages: &[ChatMessage],
        max_tokens: Option<u32>,
        on_delta: Option<&mut dyn FnMut(&str) -> bool>,
    ) -> Result<Completion, LlmError> {
        let streaming = on_delta.is_some();
        let mut body = json!({
            "model": self.config.model,
            "messages": messages
                .iter()
                .map(|m| json!({"role": m.speaker.as_str(), "content": m.content}))
                .collect::<Vec<_>>(),
            "stream": streaming,
        });
        if let Some(max_tokens) = max_tokens.or(self.config.max_tokens) {
            body["max_tokens"] = max_tokens.into();
        }
        if let Some(temperature) = self.config.temperature {
            body["temperature"] = temperature.into();
        }
        if streaming {
            body["stream_options"] = json!({"include_usage": true});
        }
        let mut request = self
            .agent
            .post(&self.endpoint)
            .set("Content-Type", "application/json");
        if let Some(key) = &self.config.api_key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let response = request
            .send_string(&body.to_string())
            .map_err(|error| self.failed(error))?;
        let is_stream = response
            .content_type()
            .eq_ignore_ascii_case("text/event-stream");
        match on_delta {
            Some(on_delta) if is_stream => {
                stream::read(response.into_reader(), on_delta).map_err(|e| self.explain(e))
            }
            on_delta => {
                // A server that ignored `stream` answers in one piece; so be it.
                let completion = self.whole(response)?;
                if let Some(on_delta) = on_delta {
                    on_delta(&completion.text);
                }
                Ok(completion)
            }
        }
    }

    /// Reads a non-streamed chat completion.
    fn whole(&self, response: ureq::Response) -> Result<Completion, LlmError> {
        let status = response.status();
        let mut body = String::new();
        response
            .into_reader()
            .take(16 << 20)
            .read_to_string(&mut body)
            .map_err(|error| self.explain(Failure::Read(error)))?;
        parse_completion(&body).ok_or_else(|| {
            self.explain(Failure::NotACompletion {
                status,
                excerpt: excerpt(&body),
            })
        })
    }

    fn failed(&self, error: ureq::Error) -> LlmError {
        match error {
            ureq::Error::Status(status, response) => {
                let mut body = String::new();
                let _ = response
                    .into_reader()
                    .take(64 << 10)
                    .read_to_string(&mut body);
                self.explain(Failure::Status {
                    status,
                    excerpt: excerpt(&body),
                })
            }
            ureq::Error::Transport(transport) => {
                let timed_out = std::error::Error::source(&transport)
                    .and_then(|source| source.downcast_ref::<std::io::Error>())
                    .is_some_and(|io| is_timeout(io.kind()));
                if timed_out {
                    self.explain(Failure::Read(std::io::ErrorKind::TimedOut.into()))
                } else {
                    LlmError::Unavailable(format!(
                        "{} cannot be reached: {transport}",
                        self.endpoint
                    ))
                }
            }
        }
    }

    fn explain(&self, failure: Failure) -> LlmError {
        let endpoint = &self.endpoint;
        match failure {
            Failure::Status { status, excerpt } => {
                LlmError::Unavailable(format!("{endpoint} answered {status}: {excerpt:?}"))
            }
            Failure::Read(error) if is_timeout(error.kind()) => LlmError::Timeout(format!(
                "{endpoint} did not answer within {} s",
                self.config.timeout.as_secs_f32()
            )),
            Failure::Read(error) => {
                LlmError::Unavailable(format!("{endpoint} broke off its answer: {error}"))
            }
            Failure::NotACompletion { status, excerpt } => LlmError::Invalid(format!(
                "{endpoint} answered {status} with no chat completion: {excerpt:?}"
            )),
            Failure::UpstreamError(excerpt) => LlmError::Unavailable(format!(
                "{endpoint} reported an error mid-answer: {excerpt:?}"
            )),
        }
    }
}

/// What went wrong, before the endpoint is named.
#[derive(Debug)]
enum Failure {
    Status { status: u16, excerpt: String },
    Read(std::io::Error),
    NotACompletion { status: u16, excerpt: String },
    UpstreamError(String),
}

fn is_timeout(kind: std::io::ErrorKind) -> bool {
    matches!(
        kind,
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// The first characters of `text`, whitespace collapsed, for an error message.
fn excerpt(text: &str) -> String {
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &collapsed[..cut]),
        None => collapsed,
    }
}

/// A chat completion's text, finish reason and usage; `None` when `body` is not one.
fn parse_completion(body: &str) -> Option<Completion> {
    let value: Value = serde_json::from_str(body).ok()?;
    let choice = value.get("choices")?.get(0)?;
    let text = choice.get("message")?.get("content")?;
    Some(Completion {
        // A null content (a refusal, a tool call) is an empty answer, not a broken one.
        text: text.as_str().unwrap_or_default().to_owned(),
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
        usage: value
            .get("usage")
            .and_then(|u| serde_json::from_value(u.clone()).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_never_printed() {
        let config = LlmConfig {
            base_url: "http://127.0.0.1:1/v1".into(),
            model: "m".into(),
            api_key: Some("sk-secret".into()),
            timeout: Duration::from_secs(1),
            max_tokens: None,
            temperature: None,
        };
        let client = LlmClient::new(config.clone()).unwrap();
        assert!(!format!("{config:?}").contains("sk-secret"));
        assert!(!format!("{client:?}").contains("sk-secret"));
    }

    #[test]
    fn base_urls_must_be_http() {
        let config = |url: &str| LlmConfig {
            base_url: url.into(),
            model: "m".into(),
            api_key: None,
            timeout: Duration::from_secs(1),
            max_tokens: None,
            temperature: None,
        };
        assert!(LlmClient::new(config("ftp://x")).is_err());
        let client = LlmClient::new(config("https://api.example.com/v1/")).unwrap();
        assert_eq!(
            client.endpoint,
            "https://api.example.com/v1/chat/completions"
        );
    }

    #[test]
    fn completions_are_read_and_anything_else_refused() {
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"好[1]"},
            "finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        let completion = parse_completion(body).unwrap();
        assert_eq!(completion.text, "好[1]");
        assert_eq!(completion.finish_reason.as_deref(), Some("stop"));
        assert_eq!(completion.usage.unwrap().completion_tokens, 2);
        assert!(parse_completion("<html>502 Bad Gateway</html>").is_none());
        assert!(parse_completion(r#"{"choices":[]}"#).is_none());
        assert_eq!(
            excerpt(&"a ".repeat(500)).chars().count(),
            EXCERPT_CHARS + 1
        );
    }
}
