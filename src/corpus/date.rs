//! Publication dates as printed (`2025年04月25日`, `2025-04-25`), with an ISO form for filters.

use serde::{Deserialize, Serialize};

/// A publication date: the text as it appears in the source and, when it names a real calendar
/// day, the same day as ISO `YYYY-MM-DD` so that date ranges compare as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleDate {
    /// The date as printed, whitespace-normalised.
    pub text: String,
    /// `YYYY-MM-DD`, when `text` is a valid date in a known format.
    pub iso: Option<String>,
}

impl ArticleDate {
    /// How to show the date: ISO when it is a recognised day, else as printed.
    pub fn label(&self) -> &str {
        self.iso.as_deref().unwrap_or(&self.text)
    }

    /// Keeps `text` and derives the ISO form when `text` is a date and nothing else
    /// (a trailing time, as in `2025-04-25T08:00:00Z`, is allowed).
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        let iso = match parse_prefix(text) {
            Some((iso, rest)) if rest.is_empty() || starts_with_time(rest) => Some(iso),
            _ => None,
        };
        Self {
            text: text.to_owned(),
            iso,
        }
    }
}

/// A document's date as a client gives it, checked as the date filters read it: a day
/// (`2025-04-25`, `2025/4/25`, `2025年4月25日`) is kept as written, an ISO timestamp with a valid
/// time is reduced to its day, and anything else (`yesterday`, `2025-02-30`,
/// `2025-01-01T25:00:00Z`) is refused with why, since no date filter could ever match it.
pub fn checked_date(text: &str) -> Result<String, String> {
    let text = text.trim();
    let refused = || {
        format!(
            "{text:?} is not a calendar day: give YYYY-MM-DD, 2025年4月29日 or an ISO timestamp"
        )
    };
    match parse_prefix(text) {
        Some((_, "")) => Ok(text.to_owned()),
        Some((iso, rest)) if rest.strip_prefix(['T', ' ']).is_some_and(is_time) => Ok(iso),
        _ => Err(refused()),
    }
}

/// Whether `text` is an ISO 8601 time of day: `HH:MM`, optional `:SS` and fraction, optional
/// `Z` or offset `±HH:MM` / `±HHMM`.
fn is_time(text: &str) -> bool {
    let two = |text: &str, max: u32| -> Option<usize> {
        let digits = text.get(..2)?;
        (digits.bytes().all(|b| b.is_ascii_digit()) && digits.parse::<u32>().ok()? <= max)
            .then_some(2)
    };
    let Some(mut at) = two(text, 23) else {
        return false;
    };
    let mut fields = 1;
    while fields < 3 && text[at..].starts_with(':') {
        let Some(read) = two(&text[at + 1..], if fields == 2 { 60 } else { 59 }) else {
            return false;
        };
        at += 1 + read;
        fields += 1;
    }
    if fields < 2 {
        return false;
    }
    if fields == 3 && text[at..].starts_with(['.', ',']) {
        let digits = text[at + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if digits == 0 {
            return false;
        }
        at += 1 + digits;
    }
    let zone = &text[at..];
    match zone.strip_prefix(['+', '-']) {
        None => zone.is_empty() || zone == "Z",
        Some(offset) => {
            let (hours, minutes) = match offset.split_once(':') {
                Some(parts) => parts,
                None if offset.len() == 4 => offset.split_at(2),
                None => return false,
            };
            hours.len() == 2
                && two(hours, 23).is_some()
                && minutes.len() == 2
                && two(minutes, 59).is_some()
        }
    }
}

fn starts_with_time(text: &str) -> bool {
    text.strip_prefix(['T', ' '])
        .is_some_and(|time| time.starts_with(|c: char| c.is_ascii_digit()))
}

/// Parses a date at the start of `text`: `YYYY年M月D日` or `YYYY-MM-DD` (also with `/` or `.`),
/// whitespace allowed between the parts. Returns the ISO date and the text after it.
pub(crate) fn parse_prefix(text: &str) -> Option<(String, &str)> {
    let (year, rest) = number(text, 4..=4)?;
    let (separator, rest) = take_char(rest)?;
    let closing: &[char] = match separator {
        '年' => &['月', '日'],
        '-' | '/' | '.' => &[separator],
        _ => return None,
    };
    let (month, rest) = number(rest, 1..=2)?;
    let (month_end, rest) = take_char(rest)?;
    if month_end != closing[0] {
        return None;
    }
    let (day, rest) = number(rest, 1..=2)?;
    let rest = match closing.get(1) {
        Some(&day_end) => rest.trim_start().strip_prefix(day_end)?,
        None => rest,
    };
    let valid = (1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day);
    valid.then(|| (format!("{year:04}-{month:02}-{day:02}"), rest))
}

/// Reads 1 to `digits` ASCII digits after optional whitespace.
fn number(text: &str, digits: std::ops::RangeInclusive<usize>) -> Option<(u32, &str)> {
    let text = text.trim_start();
    let len = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if !digits.contains(&len) {
        return None;
    }
    Some((text[..len].parse().ok()?, &text[len..]))
}

fn take_char(text: &str) -> Option<(char, &str)> {
    let text = text.trim_start();
    let c = text.chars().next()?;
    Some((c, &text[c.len_utf8()..]))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(text: &str) -> Option<String> {
        ArticleDate::parse(text).iso
    }

    #[test]
    fn known_formats_normalise_to_iso() {
        assert_eq!(iso("2025年04月25日").as_deref(), Some("2025-04-25"));
        assert_eq!(iso("2025 年 4 月 5 日").as_deref(), Some("2025-04-05"));
        assert_eq!(iso("2024-02-29").as_deref(), Some("2024-02-29"));
        assert_eq!(iso("2024/2/9").as_deref(), Some("2024-02-09"));
        assert_eq!(iso("2025-04-25T08:00:00Z").as_deref(), Some("2025-04-25"));
    }

    #[test]
    fn invalid_or_unknown_dates_keep_only_the_text() {
        for text in [
            "2025-02-29",
            "2025-13-01",
            "2025-04-25 来源",
            "April 25",
            "2025年04月",
            "",
        ] {
            assert_eq!(iso(text), None, "{text}");
        }
        assert_eq!(ArticleDate::parse(" April 25 ").text, "April 25");
    }

    #[test]
    fn dates_given_are_days_or_valid_timestamps() {
        for (given, kept) in [
            ("2025-04-25", "2025-04-25"),
            (" 2025年04月29日 ", "2025年04月29日"),
            ("2024/2/9", "2024/2/9"),
            ("2025-04-25T08:00:00Z", "2025-04-25"),
            ("2025-04-25T08:00", "2025-04-25"),
            ("2025-04-25 23:59:60.5+08:00", "2025-04-25"),
            ("2025-04-25T00:00:00-0530", "2025-04-25"),
        ] {
            assert_eq!(checked_date(given).as_deref(), Ok(kept), "{given}");
        }
        for refused in [
            "2025-02-30",
            "99999-01-01",
            "yesterday",
            "2025-01-01T25:00:00Z",
            "2025-01-01T12:60",
            "2025-01-01T12",
            "2025-01-01T12:00:00+2400",
            "2025-01-01T12:00:00.Z",
            "2025-04-25 来源",
            "",
        ] {
            let why = checked_date(refused).unwrap_err();
            assert!(why.contains("calendar day"), "{refused}: {why}");
        }
    }

    #[test]
    fn prefix_returns_the_rest() {
        assert_eq!(
            parse_prefix("2025年04月25日来源：新华网"),
            Some(("2025-04-25".to_owned(), "来源：新华网"))
        );
    }
}
