//! What generative answers need around the LLM call: the prompt with numbered sources, the
//! prompt that condenses a conversation into one question, and the clean-up of the `[n]`
//! markers the model writes (as they stream).

use std::ops::Range;

use crate::corpus::{is_cjk_letter, is_mostly_cjk, Passage};
use crate::llm::{ChatMessage, Speaker};

/// Whether to speak Chinese to the model and the user: most of the question's letters are CJK
/// (the rule that also says whether a question is asked across languages).
pub fn is_chinese(text: &str) -> bool {
    is_mostly_cjk([text])
}

/// The messages asking the model to answer `question` from `sources` (numbered from 1 in this
/// order), citing them with `[n]`, and to say `refusal` when they do not answer.
pub fn answer_prompt(question: &str, sources: &[&Passage], refusal: &str) -> Vec<ChatMessage> {
    let chinese = is_chinese(question);
    let mut numbered = String::new();
    for (i, passage) in sources.iter().enumerate() {
        let article = &passage.article;
        numbered.push_str(&format!("[{}]", i + 1));
        if let Some(title) = &article.title {
            numbered.push(' ');
            numbered.push_str(title);
        }
        if let Some(date) = &article.date {
            numbered.push_str(&format!(" ({})", date.label()));
        }
        numbered.push('\n');
        numbered.push_str(&passage.text);
        numbered.push_str("\n\n");
    }
    let (instructions, request) = if chinese {
        (
            format!(
                "你是严谨的问答助手。只根据用户给出的编号资料回答问题，不要使用资料以外的知识。\
                 在每句话后面用方括号标出它依据的资料编号，例如 [1] 或 [2][3]。\
                 回答要简洁，使用中文。如果资料中没有答案，只回答：{refusal}"
            ),
            format!("资料：\n\n{numbered}问题：{question}"),
        )
    } else {
        (
            format!(
                "You answer questions strictly from the numbered sources the user gives, never \
                 from other knowledge. After each sentence, cite the sources it rests on in \
                 square brackets, like [1] or [2][3]. Be concise. If the sources do not contain \
                 the answer, reply only: {refusal}"
            ),
            format!("Sources:\n\n{numbered}Question: {question}"),
        )
    };
    vec![
        ChatMessage::new(Speaker::System, instructions),
        ChatMessage::new(Speaker::User, request),
    ]
}

/// The messages asking the model to rewrite the last question of `conversation` as one that
/// stands alone, relative dates resolved against `today` (the newest document's date).
pub fn condense_prompt(
    conversation: &[ChatMessage],
    question: &str,
    today: Option<&str>,
) -> Vec<ChatMessage> {
    let chinese = is_chinese(question);
    let mut transcript = String::new();
    for message in conversation {
        let who = match (message.speaker, chinese) {
            (Speaker::Assistant, true) => "助手",
            (_, true) => "用户",
            (Speaker::Assistant, false) => "Assistant",
            (_, false) => "User",
        };
        transcript.push_str(&format!("{who}: {}\n", message.content));
    }
    let instructions = match (chinese, today) {
        (true, Some(today)) => format!(
            "把对话中用户的最后一个问题改写成一个不看对话也能理解的完整问题。\
             “今天”“去年”“上个月”这类相对时间按当前日期 {today} 换算成具体日期。只输出改写后的问题。"
        ),
        (true, None) => "把对话中用户的最后一个问题改写成一个不看对话也能理解的完整问题。\
                         只输出改写后的问题。"
            .to_owned(),
        (false, Some(today)) => format!(
            "Rewrite the user's last question as one that can be understood without the \
             conversation. Resolve relative dates (today, last year, last month) against the \
             current date, {today}. Reply with the rewritten question only."
        ),
        (false, None) => "Rewrite the user's last question as one that can be understood without \
                          the conversation. Reply with the rewritten question only."
            .to_owned(),
    };
    let request = if chinese {
        format!("对话：\n{transcript}用户: {question}\n\n改写后的问题：")
    } else {
        format!("Conversation:\n{transcript}User: {question}\n\nRewritten question:")
    };
    vec![
        ChatMessage::new(Speaker::System, instructions),
        ChatMessage::new(Speaker::User, request),
    ]
}

/// The question a condensing reply states: its first non-empty line, without a label or
/// quotation marks the model may have added. `None` when there is none.
pub fn condensed_question(reply: &str) -> Option<String> {
    let line = reply.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = [
        "改写后的问题：",
        "改写后的问题:",
        "Rewritten question:",
        "问题：",
        "Question:",
    ]
    .iter()
    .find_map(|label| line.strip_prefix(label))
    .unwrap_or(line)
    .trim()
    .trim_matches(|c| matches!(c, '"' | '“' | '”' | '「' | '」' | '\''))
    .trim();
    (!line.is_empty()).then(|| line.to_owned())
}

/// Whether a question is a follow-up that cannot stand alone ("那上海呢？", "它在哪个区？",
/// "and in 2024?"), so that without an LLM it is searched together with the previous
/// question: a very short one, or a short one that points back (那, 它, 这, 呢, it, they, …).
pub fn is_short_follow_up(question: &str) -> bool {
    const POINTING_BACK_ZH: [&str; 9] = ["那", "它", "他", "她", "其", "这", "该", "此", "呢"];
    const POINTING_BACK_EN: [&str; 10] = [
        "it", "its", "they", "them", "their", "that", "this", "those", "these", "and",
    ];
    let cjk = question.chars().filter(|&c| is_cjk_letter(c)).count();
    let words: Vec<String> = question
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !w.chars().any(is_cjk_letter))
        .map(str::to_lowercase)
        .collect();
    let length = cjk + 2 * words.len();
    let points_back = POINTING_BACK_ZH.iter().any(|p| question.contains(p))
        || words.iter().any(|w| POINTING_BACK_EN.contains(&w.as_str()));
    length <= 6 || (length <= 16 && points_back)
}

/// Rewrites the `[n]` markers of a streamed answer as they come: a marker naming sources that
/// exist is kept (`[1, 2]` and `【1】` become `[1][2]` and `[1]`), one naming none of them is
/// dropped, and any other bracketed text passes unchanged. Text that might still be the start
/// of a marker is held back until it is known not to be.
#[derive(Debug)]
pub struct MarkerFilter {
    sources: usize,
    held: String,
    cited: Vec<usize>,
}

/// Longest marker looked at; a longer bracketed text is not one.
const MAX_MARKER_CHARS: usize = 16;

impl MarkerFilter {
    pub fn new(sources: usize) -> Self {
        Self {
            sources,
            held: String::new(),
            cited: Vec::new(),
        }
    }

    /// The text of `piece` that can be shown now.
    pub fn push(&mut self, piece: &str) -> String {
        let mut out = String::new();
        for c in piece.chars() {
            if self.held.is_empty() {
                if matches!(c, '[' | '【') {
                    self.held.push(c);
                } else {
                    out.push(c);
                }
                continue;
            }
            self.held.push(c);
            if matches!(c, ']' | '】') {
                let held = std::mem::take(&mut self.held);
                out.push_str(&self.resolve(&held));
            } else if !(c.is_ascii_digit() || matches!(c, ',' | '，' | ' ' | '、'))
                || self.held.chars().count() > MAX_MARKER_CHARS
            {
                // Not a marker after all: release it, reconsidering a bracket inside it.
                let held = std::mem::take(&mut self.held);
                let mut chars = held.chars();
                out.push(chars.next().unwrap_or_default());
                out.push_str(&self.push(chars.as_str()));
            }
        }
        out
    }

    /// What is still held at the end of the answer.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Every source cited so far, in order of first citation.
    pub fn cited(&self) -> &[usize] {
        &self.cited
    }

    fn resolve(&mut self, marker: &str) -> String {
        let inner = &marker[marker.chars().next().map_or(0, char::len_utf8)
            ..marker.len() - marker.chars().last().map_or(0, char::len_utf8)];
        let numbers: Vec<usize> = inner
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .filter_map(|n| n.parse().ok())
            .collect();
        if numbers.is_empty() {
            return marker.to_owned();
        }
        let mut kept = String::new();
        for n in numbers {
            if (1..=self.sources).contains(&n) {
                kept.push_str(&format!("[{n}]"));
                if !self.cited.contains(&n) {
                    self.cited.push(n);
                }
            }
        }
        kept
    }
}

/// The `[n]` markers of `text` (digits only between the brackets), each with its byte range:
/// the one reading of markers that splitting, stripping and annotating an answer share.
pub fn markers(text: &str) -> impl Iterator<Item = (Range<usize>, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        while let Some(open) = text[at..].find('[').map(|i| at + i) {
            at = open + 1;
            let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
            let close = at + digits;
            if digits > 0 && text[close..].starts_with(']') {
                if let Ok(n) = text[at..close].parse() {
                    at = close + 1;
                    return Some((open..at, n));
                }
            }
        }
        None
    })
}

/// `text` without its `[n]` markers, trimmed.
pub fn without_markers(text: &str) -> String {
    let mut plain = String::new();
    let mut at = 0;
    for (marker, _) in markers(text) {
        plain.push_str(&text[at..marker.start]);
        at = marker.end;
    }
    plain.push_str(&text[at..]);
    plain.trim().to_owned()
}

/// The pieces of an answer, each cut after its last marker, with the sources it cites (by byte
/// range; a last piece without markers cites none).
pub fn cited_by_sentence(text: &str) -> Vec<(Range<usize>, Vec<usize>)> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut cited = Vec::new();
    for (marker, n) in markers(text) {
        cited.push(n);
        // A sentence ends after its last marker.
        if !text[marker.end..].starts_with('[') {
            pieces.push((start..marker.end, std::mem::take(&mut cited)));
            start = marker.end;
        }
    }
    if start < text.len() && !text[start..].trim().is_empty() {
        pieces.push((start..text.len(), cited));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filtered(sources: usize, pieces: &[&str]) -> (String, Vec<usize>) {
        let mut filter = MarkerFilter::new(sources);
        let mut out: String = pieces.iter().map(|p| filter.push(p)).collect();
        out.push_str(&filter.finish());
        (out, filter.cited().to_vec())
    }

    #[test]
    fn markers_naming_no_source_are_dropped_even_split_across_pieces() {
        assert_eq!(
            filtered(2, &["上海[", "1", "]增长。北京[7]也是[2", "]。"]),
            ("上海[1]增长。北京也是[2]。".into(), vec![1, 2])
        );
        assert_eq!(
            filtered(3, &["Both [1, 3] and 【2】 say so [0]."]),
            ("Both [1][3] and [2] say so .".into(), vec![1, 3, 2])
        );
    }

    #[test]
    fn other_brackets_pass_unchanged() {
        assert_eq!(
            filtered(2, &["见[注]与[a[1]。数组[", "x]"]),
            ("见[注]与[a[1]。数组[x]".into(), vec![1])
        );
        assert_eq!(filtered(2, &["未完[12"]).0, "未完[12");
    }

    #[test]
    fn sentences_end_after_their_markers() {
        let text = "上海增长了。[1][2]北京也是。[3] No marker here.";
        let pieces = cited_by_sentence(text);
        let texts: Vec<&str> = pieces.iter().map(|(r, _)| &text[r.clone()]).collect();
        assert_eq!(
            texts,
            ["上海增长了。[1][2]", "北京也是。[3]", " No marker here."]
        );
        assert_eq!(pieces[0].1, [1, 2]);
        assert!(pieces[2].1.is_empty());
    }

    #[test]
    fn the_language_is_that_of_most_of_the_letters() {
        assert!(is_chinese("模速空间位于上海哪个区？"));
        assert!(is_chinese("上海的GDP是多少？"));
        assert!(!is_chinese("What is 模速空间?"));
    }

    #[test]
    fn markers_are_digits_in_brackets_and_stripped_alone() {
        let text = "上海[1][2]增长[注]了[+3]。[12]";
        let found: Vec<(&str, usize)> = markers(text).map(|(r, n)| (&text[r], n)).collect();
        assert_eq!(found, [("[1]", 1), ("[2]", 2), ("[12]", 12)]);
        assert_eq!(
            without_markers(" 上海[1][2]增长[注]了。[3] "),
            "上海增长[注]了。"
        );
    }

    #[test]
    fn condensed_questions_lose_labels_and_quotes() {
        assert_eq!(
            condensed_question("\n改写后的问题：“上海的GDP是多少？”\n多余").as_deref(),
            Some("上海的GDP是多少？")
        );
        assert_eq!(condensed_question("  \n"), None);
    }

    #[test]
    fn short_follow_ups_are_recognised() {
        assert!(is_short_follow_up("那上海呢？"));
        assert!(is_short_follow_up("and in 2024?"));
        assert!(!is_short_follow_up(
            "模速空间位于上海哪个区，它是什么时候开放的？"
        ));
        assert!(!is_short_follow_up(
            "What did the Shanghai government announce about AI?"
        ));
    }
}
