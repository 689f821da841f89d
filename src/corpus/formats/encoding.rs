//! Bytes → text for text files in whatever encoding they were saved in. Chinese corpora are
//! full of GBK/GB18030 and Big5 files; refusing them, or reading them as mojibake, would both
//! lose the text. A declared charset decides first; else valid UTF-8 is UTF-8, then a
//! byte-order mark decides (UTF-16), then `chardetng` guesses the legacy encoding. What cannot be decoded without loss is refused, never
//! patched with U+FFFD.

use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use encoding_rs::Encoding;

use super::ExtractError;

/// Text decoded from bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedText {
    /// As UTF-8. A UTF-8 file keeps its byte-order mark, so that byte offsets into the text
    /// are offsets into the file; others lose theirs.
    pub text: String,
    /// The encoding it was in, as the WHATWG Encoding Standard names it (`UTF-8`, `GBK`, …).
    pub encoding: &'static str,
}

/// Decodes `bytes`, a text file, into text: in `declared` when the sender named its encoding
/// (a `charset`), else in the encoding found.
pub fn decode_text(
    bytes: &[u8],
    declared: Option<&'static Encoding>,
) -> Result<DecodedText, ExtractError> {
    if let Some(encoding) = declared {
        let bom = Encoding::for_bom(bytes).filter(|(bom, _)| *bom == encoding);
        let start = if encoding == encoding_rs::UTF_8 {
            0
        } else {
            bom.map_or(0, |(_, length)| length)
        };
        return decode_as(encoding, &bytes[start..]).ok_or(ExtractError::NotDeclared {
            charset: encoding.name(),
        });
    }
    let utf8 = std::str::from_utf8(bytes);
    if let (Ok(text), false) = (utf8, bytes.contains(&0)) {
        return Ok(DecodedText {
            text: text.to_owned(),
            encoding: encoding_rs::UTF_8.name(),
        });
    }
    if let Some((encoding, bom)) = Encoding::for_bom(bytes) {
        return decode_as(encoding, &bytes[bom..]).ok_or(ExtractError::Undecodable {
            guess: encoding.name(),
        });
    }
    if let Some(offset) = bytes.iter().position(|&b| b == 0) {
        return Err(ExtractError::Binary { offset });
    }
    let invalid_at = utf8.err().map_or(0, |error| error.valid_up_to());
    if mostly_utf8(bytes) {
        let line = bytes[..invalid_at].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(ExtractError::DamagedUtf8 {
            offset: invalid_at,
            line,
        });
    }
    let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
    detector.feed(bytes, true);
    let guess = detector.guess(None, Utf8Detection::Deny);
    decode_as(guess, bytes).ok_or(ExtractError::Undecodable {
        guess: guess.name(),
    })
}

/// `bytes` decoded as `encoding`, or `None` when they are malformed in it.
fn decode_as(encoding: &'static Encoding, bytes: &[u8]) -> Option<DecodedText> {
    let text = encoding.decode_without_bom_handling_and_without_replacement(bytes)?;
    Some(DecodedText {
        text: text.into_owned(),
        encoding: encoding.name(),
    })
}

/// Whether `bytes`, which are not valid UTF-8, still have more well-formed multi-byte UTF-8
/// characters than malformed sequences: UTF-8 damaged in places (a truncated download, one
/// bad byte), not text in a legacy encoding, where almost no non-ASCII pair is valid UTF-8.
fn mostly_utf8(bytes: &[u8]) -> bool {
    let (mut valid, mut invalid) = (0usize, 0usize);
    for chunk in bytes.utf8_chunks() {
        valid += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
        invalid += usize::from(!chunk.invalid().is_empty());
    }
    valid > invalid
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHINESE: &str =
        "模速空间是上海市打造的人工智能大模型专业孵化和加速平台，已入驻企业一百余家。\
        二〇二五年四月二十九日上午，习近平来到位于徐汇区的模速空间调研。";

    fn encoded(name: &str, text: &str) -> Vec<u8> {
        let encoding = Encoding::for_label(name.as_bytes()).unwrap();
        let (bytes, _, unmappable) = encoding.encode(text);
        assert!(!unmappable, "{name} cannot hold the sample");
        bytes.into_owned()
    }

    #[test]
    fn utf8_is_read_as_it_is_and_utf16_by_its_bom() {
        let decoded = decode_text(CHINESE.as_bytes(), None).unwrap();
        assert_eq!(
            (decoded.text.as_str(), decoded.encoding),
            (CHINESE, "UTF-8")
        );
        let with_bom = format!("\u{feff}{CHINESE}");
        assert_eq!(
            decode_text(with_bom.as_bytes(), None).unwrap().text,
            with_bom
        );
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(CHINESE.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let decoded = decode_text(&utf16, None).unwrap();
        assert_eq!(
            (decoded.text.as_str(), decoded.encoding),
            (CHINESE, "UTF-16LE")
        );
    }

    #[test]
    fn chinese_legacy_encodings_are_recognised_and_decoded_whole() {
        let traditional =
            "模速空間是上海市打造的人工智慧大模型專業孵化和加速平台，已進駐企業一百餘家。\
            習近平來到位於徐匯區的模速空間調研，了解大模型產業發展情況。";
        for (label, text, expected) in [
            ("gbk", CHINESE, "GBK"),
            ("gb18030", &format!("{CHINESE}€"), "GBK"),
            ("big5", traditional, "Big5"),
        ] {
            let decoded = decode_text(&encoded(label, text), None).unwrap();
            assert_eq!(decoded.text, text, "{label}");
            // GB18030 text is read by GBK's decoder, which WHATWG defines as GB18030's.
            assert_eq!(decoded.encoding, expected, "{label}");
        }
    }

    #[test]
    fn damaged_utf8_and_binary_data_are_refused_not_patched() {
        let mut damaged = format!("第一行\n{CHINESE}\n").into_bytes();
        let at = "第一行\n".len();
        damaged[at] = 0xff;
        assert_eq!(
            decode_text(&damaged, None),
            Err(ExtractError::DamagedUtf8 {
                offset: at,
                line: 2
            })
        );
        let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Length 3 >>\nstream\n\x00\x01\x02";
        let nul = pdf.iter().position(|&b| b == 0).unwrap();
        assert_eq!(
            decode_text(pdf, None),
            Err(ExtractError::Binary { offset: nul })
        );
    }

    #[test]
    fn a_declared_charset_is_trusted_and_checked() {
        let gbk = encoded("gbk", "短");
        let decoded = decode_text(&gbk, Some(encoding_rs::GBK)).unwrap();
        assert_eq!((decoded.text.as_str(), decoded.encoding), ("短", "GBK"));
        assert_eq!(
            decode_text(&gbk, Some(encoding_rs::UTF_8)),
            Err(ExtractError::NotDeclared { charset: "UTF-8" })
        );
    }
}
