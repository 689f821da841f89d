//! What makes a sentence an answer, measured: how much of the question's information it holds
//! (rare terms weigh more), how close it is in meaning, whether it holds the kind of thing the
//! question asks for (a person for 谁/who, a date for 何时/when, a number for 多少/how many)
//! that the question itself does not already say, and the same for its neighbours, since the
//! sentence naming the subject is often the one before the answer.

use std::collections::HashSet;

use crate::index::Analyzer;

/// What a question asks for, from its wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnswerKind {
    Person,
    Place,
    Time,
    Number,
    /// Anything else: a definition, a reason, a name of a thing.
    Other,
}

/// Cues per kind, tried in this order: time before number, since 几月/哪一年 ask for a date.
const CUES: [(AnswerKind, &[&str]); 4] = [
    (
        AnswerKind::Time,
        &[
            "何时",
            "什么时候",
            "哪一年",
            "哪年",
            "哪一天",
            "哪天",
            "几月",
            "几号",
            "何年",
            "什么时间",
            "哪个时间",
            "哪个朝代",
            "什么朝代",
            "哪个时期",
            "什么年代",
            "哪个年代",
            "when ",
            "what year",
            "which year",
            "what date",
            "what time",
            "what century",
        ],
    ),
    (
        AnswerKind::Number,
        &[
            "多少",
            "几",
            "多大",
            "多长",
            "多高",
            "多重",
            "多远",
            "多久",
            "多深",
            "多宽",
            "多快",
            "百分之",
            "how many",
            "how much",
            "how long",
            "how old",
            "how far",
            "how large",
            "how big",
            "how tall",
            "what percentage",
            "what number",
        ],
    ),
    (
        AnswerKind::Person,
        &[
            "谁",
            "哪位",
            "何人",
            "什么人",
            "哪个人",
            "哪些人",
            "who ",
            "whom",
            "whose",
        ],
    ),
    (
        AnswerKind::Place,
        &[
            "哪里",
            "哪儿",
            "何处",
            "何地",
            "在哪",
            "什么地方",
            "哪个国家",
            "哪个城市",
            "哪个省",
            "哪座城市",
            "哪个地区",
            "where ",
            "which country",
            "which city",
            "which province",
            "what country",
            "what city",
            "what province",
        ],
    ),
];

impl AnswerKind {
    pub fn of_question(question: &str) -> Self {
        // A trailing space lets `who`/`when`/`where` match at the end of a question as well.
        let lower = question.to_lowercase() + " ";
        CUES.iter()
            .find(|(_, cues)| cues.iter().any(|cue| lower.contains(cue)))
            .map_or_else(
                || {
                    if asks_which_place(&lower) {
                        Self::Place
                    } else {
                        Self::Other
                    }
                },
                |(kind, _)| *kind,
            )
    }

    /// Whether a word with jieba's part-of-speech `tag` is something of this kind.
    fn admits(self, word: &str, tag: &str) -> bool {
        let digits = word.chars().any(|c| c.is_ascii_digit());
        match self {
            Self::Person => tag.starts_with("nr"),
            // jieba's tags miss many places (徐汇区 is tagged a person's name); a word that
            // ends in 区, 县, 省… names one whatever its tag.
            Self::Place => {
                tag == "ns"
                    || (word.chars().count() >= 2 && word.ends_with(|c| PLACE_SUFFIXES.contains(c)))
            }
            Self::Time => {
                tag == "t"
                    || (digits
                        && (word.contains(['年', '月', '日'])
                            || word.contains("世纪")
                            || (word.len() == 4 && word.chars().all(|c| c.is_ascii_digit()))))
            }
            Self::Number => tag == "m" || tag == "mq" || digits,
            Self::Other => false,
        }
    }
}

/// Last characters of the names of administrative places.
const PLACE_SUFFIXES: &str = "国省市区县镇乡村州岛";

/// Whether the question asks "which district/county/island…": 哪, an optional measure word,
/// then a character that names a kind of place (哪个区, 哪座岛, 哪一个省).
fn asks_which_place(question: &str) -> bool {
    const MEASURES: [&str; 5] = ["一个", "个", "座", "一", "些"];
    const PLACES: &str = "国省市区县镇乡村州城岛洲山河湖海街路港站";
    question.match_indices('哪').any(|(at, which)| {
        let rest = &question[at + which.len()..];
        let rest = MEASURES
            .iter()
            .find_map(|m| rest.strip_prefix(m))
            .unwrap_or(rest);
        rest.chars().next().is_some_and(|c| PLACES.contains(c))
    })
}

/// A question made ready for scoring sentences.
pub struct QuestionProfile {
    pub kind: AnswerKind,
    /// Its distinct terms with their inverse document frequency in the collection.
    terms: Vec<(String, f32)>,
    information: f32,
    /// Its words, to tell a sentence's new entities from the question's own.
    words: HashSet<String>,
    /// Its letters and digits, lower-cased, in order: what a sentence restating it shares.
    chars: Vec<char>,
    /// Its distinct pairs of adjacent letters or digits.
    bigrams: HashSet<[char; 2]>,
}

impl QuestionProfile {
    pub fn new(analyzer: &Analyzer, question: &str, idf: impl Fn(&str) -> f32) -> Self {
        let mut terms: Vec<(String, f32)> = Vec::new();
        for term in analyzer.terms(question) {
            if !terms.iter().any(|(t, _)| *t == term) {
                let weight = idf(&term);
                terms.push((term, weight));
            }
        }
        let information = terms.iter().map(|(_, w)| w).sum();
        let words = analyzer
            .tagged_words(question)
            .into_iter()
            .map(|(word, _)| word.to_lowercase())
            .collect();
        let chars = letters(question);
        let bigrams = chars.windows(2).map(|w| [w[0], w[1]]).collect();
        Self {
            kind: AnswerKind::of_question(question),
            terms,
            information,
            words,
            chars,
            bigrams,
        }
    }
}

/// The letters and digits of `text`, lower-cased.
fn letters(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Length of the longest common subsequence of `a` and `b`.
fn common_subsequence(a: &[char], b: &[char]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for &x in a {
        let mut diagonal = 0;
        for (j, &y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// One candidate sentence, analysed once.
pub struct AnalysedSentence {
    terms: HashSet<String>,
    chars: Vec<char>,
    bigrams: HashSet<[char; 2]>,
    kind_match: bool,
}

impl AnalysedSentence {
    pub fn new(analyzer: &Analyzer, question: &QuestionProfile, sentence: &str) -> Self {
        let kind_match = question.kind != AnswerKind::Other
            && analyzer
                .tagged_words(sentence)
                .into_iter()
                .any(|(word, tag)| {
                    question.kind.admits(word, tag)
                        && !question.words.contains(&word.to_lowercase())
                });
        let chars = letters(sentence);
        Self {
            terms: analyzer.terms(sentence).into_iter().collect(),
            bigrams: chars.windows(2).map(|w| [w[0], w[1]]).collect(),
            chars,
            kind_match,
        }
    }
}

/// How rare each of the question's terms and bigrams is among the candidate sentences. The
/// passages' topic (the name a question asks about) is in most of their sentences and tells
/// them apart poorly; the rest of the question (体长 in 高氏前肛鳗的体长是多少) is what points at
/// the one sentence that answers, even when that sentence leaves the topic to its neighbours.
pub struct LocalRarity {
    /// Per question term, in the profile's order.
    terms: Vec<f32>,
    bigrams: Vec<([char; 2], f32)>,
}

impl LocalRarity {
    pub fn new(question: &QuestionProfile, sentences: &[AnalysedSentence]) -> Self {
        let rarity = |with: usize| ((sentences.len() as f32 + 1.0) / (with as f32 + 0.5)).ln();
        let count =
            |has: &dyn Fn(&AnalysedSentence) -> bool| sentences.iter().filter(|s| has(s)).count();
        Self {
            terms: question
                .terms
                .iter()
                .map(|(term, _)| rarity(count(&|s| s.terms.contains(term))))
                .collect(),
            bigrams: question
                .bigrams
                .iter()
                .map(|b| (*b, rarity(count(&|s| s.bigrams.contains(b)))))
                .collect(),
        }
    }
}

/// What scoring needs to know of one sentence on its own.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SentenceEvidence {
    /// Share of the question's information (IDF-weighted terms) the sentence contains.
    pub coverage: f32,
    /// The same, each term weighted also by its rarity among the candidate sentences.
    pub focus: f32,
    /// It contains something of the kind the question asks for that the question does not say.
    pub kind_match: bool,
    /// Share of the question's letters the sentence has in the same order: a question is
    /// often its answer sentence reworded around a question word.
    pub in_order: f32,
    /// Share of the question's character bigrams the sentence contains, each weighted by its
    /// rarity among the candidates: overlap that does not depend on how words were segmented.
    pub bigrams: f32,
}

impl SentenceEvidence {
    pub fn of(
        question: &QuestionProfile,
        rarity: &LocalRarity,
        sentence: &AnalysedSentence,
    ) -> Self {
        let share = |part: f32, whole: f32| if whole > 0.0 { part / whole } else { 0.0 };
        let (mut covered, mut focused, mut focus_total) = (0.0, 0.0, 0.0);
        for ((term, idf), local) in question.terms.iter().zip(&rarity.terms) {
            focus_total += idf * local;
            if sentence.terms.contains(term) {
                covered += idf;
                focused += idf * local;
            }
        }
        let (mut bigrams, mut bigrams_total) = (0.0, 0.0);
        for (bigram, local) in &rarity.bigrams {
            bigrams_total += local;
            if sentence.bigrams.contains(bigram) {
                bigrams += local;
            }
        }
        Self {
            coverage: share(covered, question.information),
            focus: share(focused, focus_total),
            kind_match: sentence.kind_match,
            in_order: share(
                common_subsequence(&question.chars, &sentence.chars) as f32,
                question.chars.len() as f32,
            ),
            bigrams: share(bigrams, bigrams_total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The evidence for one sentence judged on its own (no other candidates).
    fn evidence(
        analyzer: &Analyzer,
        question: &QuestionProfile,
        sentence: &str,
    ) -> SentenceEvidence {
        let analysed = [AnalysedSentence::new(analyzer, question, sentence)];
        let rarity = LocalRarity::new(question, &analysed);
        SentenceEvidence::of(question, &rarity, &analysed[0])
    }

    #[test]
    fn question_words_say_what_kind_of_answer_is_wanted() {
        for (question, kind) in [
            ("这部电影是谁导演的？", AnswerKind::Person),
            ("长城始建于哪一年？", AnswerKind::Time),
            ("公司有多少名员工？", AnswerKind::Number),
            ("他几岁开始学琴？", AnswerKind::Number),
            ("总部位于哪里？", AnswerKind::Place),
            ("模速空间位于上海哪个区？", AnswerKind::Place),
            ("这座桥横跨哪一条河？", AnswerKind::Other),
            ("该岛屿属于哪座城市？", AnswerKind::Place),
            ("他们去了哪些国家？", AnswerKind::Place),
            ("哪种材料最轻？", AnswerKind::Other),
            ("In which country is it?", AnswerKind::Place),
            ("什么是量子计算？", AnswerKind::Other),
            ("Who founded the company?", AnswerKind::Person),
            ("When was it built?", AnswerKind::Time),
            ("How many people live there?", AnswerKind::Number),
            ("Where is the headquarters", AnswerKind::Place),
        ] {
            assert_eq!(AnswerKind::of_question(question), kind, "{question}");
        }
    }

    #[test]
    fn a_sentence_matches_the_kind_only_with_something_the_question_does_not_say() {
        let analyzer = Analyzer::default();
        let question =
            QuestionProfile::new(&analyzer, "华为公司成立于哪一年？", |_| 1.0);
        let answer = evidence(&analyzer, &question, "华为公司成立于1987年，总部在深圳。");
        let restated = evidence(&analyzer, &question, "华为公司是一家科技企业。");
        assert!(answer.kind_match);
        assert!(!restated.kind_match);
        assert!(answer.coverage > restated.coverage);

        let question = QuestionProfile::new(&analyzer, "1987年成立的公司有多少员工？", |_| 1.0);
        let same_year = evidence(&analyzer, &question, "那家公司1987年成立。");
        assert!(!same_year.kind_match);

        let question = QuestionProfile::new(&analyzer, "模速空间位于上海哪个区？", |_| 1.0);
        let district = evidence(
            &analyzer,
            &question,
            "习近平来到位于徐汇区的上海“模速空间”大模型创新生态社区调研。",
        );
        assert!(district.kind_match);
    }

    #[test]
    fn a_reworded_question_shares_its_letters_in_order_with_the_answer_sentence() {
        let analyzer = Analyzer::default();
        let question = QuestionProfile::new(
            &analyzer,
            "《战国无双3》是由哪两个公司合作开发的？",
            |_| 1.0,
        );
        let answer = evidence(
            &analyzer,
            &question,
            "《战国无双3》是由光荣和ω-force开发的正统续作。",
        );
        let shuffled = evidence(&analyzer, &question, "的发开，作合司公，3双无国战由是。");
        assert!(answer.in_order > shuffled.in_order);
        assert!(answer.bigrams > shuffled.bigrams);
        assert_eq!(common_subsequence(&letters("abcde"), &letters("xaxcxe")), 3);
    }

    #[test]
    fn terms_in_every_candidate_weigh_less_in_focus() {
        let analyzer = Analyzer::default();
        let idf = |term: &str| {
            if ["的", "是"].contains(&term) {
                0.05
            } else {
                3.0
            }
        };
        let question = QuestionProfile::new(&analyzer, "高氏前肛鳗的体长是多少？", idf);
        let texts = [
            "高氏前肛鳗是辐鳍鱼纲的一个种。",
            "高氏前肛鳗分布于西太平洋。",
            "体长可达19.7公分。",
            "高氏前肛鳗栖息在深海。",
            "高氏前肛鳗以小鱼为食。",
            "高氏前肛鳗无食用价值。",
        ];
        let analysed: Vec<AnalysedSentence> = texts
            .iter()
            .map(|t| AnalysedSentence::new(&analyzer, &question, t))
            .collect();
        let rarity = LocalRarity::new(&question, &analysed);
        let evidence: Vec<SentenceEvidence> = analysed
            .iter()
            .map(|a| SentenceEvidence::of(&question, &rarity, a))
            .collect();
        assert!(evidence[0].coverage > evidence[2].coverage, "{evidence:?}");
        assert!(evidence[2].focus > evidence[0].focus, "{evidence:?}");
    }

    #[test]
    fn rare_question_terms_weigh_more_in_coverage() {
        let analyzer = Analyzer::default();
        let idf = |term: &str| if term == "深圳" { 5.0 } else { 1.0 };
        let question = QuestionProfile::new(&analyzer, "深圳的公司", idf);
        let rare = evidence(&analyzer, &question, "深圳很大");
        let common = evidence(&analyzer, &question, "公司很大");
        assert!(rare.coverage > common.coverage);
    }
}
