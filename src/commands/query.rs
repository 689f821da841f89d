//! `wenda query`: answer one question from the command line, the quickest way to try wenda.

use anyhow::bail;
use wenda::embedding::Role;
use wenda::http::wire::ScoredPassage;
use wenda::search::{Filter, IsoDate, Mode, Question, SearchParams, DEFAULT_TOP_K, MAX_TOP_K};

use super::engine::{load_engine, CorpusArgs};
use super::ModelArgs;

#[derive(clap::Args)]
pub struct QueryArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    corpus: CorpusArgs,
    /// The question, in any language the model knows.
    question: String,
    /// How many passages to show.
    #[arg(long, default_value_t = DEFAULT_TOP_K, value_parser = parse_top_k)]
    top_k: usize,
    /// How to rank: by meaning, by shared words, or both.
    #[arg(long, value_enum, default_value_t = Mode::default())]
    mode: Mode,
    /// Only passages of this document (its path as shown in results).
    #[arg(long)]
    document: Option<String>,
    /// Only passages whose article title contains this text.
    #[arg(long)]
    title: Option<String>,
    /// Only passages dated on or after this day (YYYY-MM-DD).
    #[arg(long, value_parser = parse_date)]
    date_from: Option<IsoDate>,
    /// Only passages dated on or before this day (YYYY-MM-DD).
    #[arg(long, value_parser = parse_date)]
    date_to: Option<IsoDate>,
    /// Print the results as JSON (the API's result objects) instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_top_k(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(k) if (1..=MAX_TOP_K).contains(&k) => Ok(k),
        _ => Err(format!("expected a number from 1 to {MAX_TOP_K}")),
    }
}

fn parse_date(text: &str) -> Result<IsoDate, String> {
    IsoDate::try_from(text.to_owned())
}

pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    if args.question.trim().is_empty() {
        bail!("the question is empty");
    }
    let loaded = load_engine(&args.model, &args.corpus)?;
    let embedding = if args.mode.needs_embedding() {
        Some(loaded.embedder.embed_one(Role::Query, &args.question)?)
    } else {
        None
    };
    if embedding.as_ref().is_some_and(|e| e.truncated) {
        eprintln!(
            "note: the question is longer than the model's {} tokens; only its beginning was used",
            loaded.model.max_tokens
        );
    }
    let params = SearchParams {
        top_k: args.top_k,
        mode: args.mode,
        filter: Filter {
            document: args.document,
            title: args.title,
            date_from: args.date_from,
            date_to: args.date_to,
        },
        min_score: None,
    };
    let question = Question {
        text: &args.question,
        vector: embedding.as_ref().map(|e| e.vector.as_slice()),
    };
    let results: Vec<ScoredPassage> = loaded
        .engine
        .search(&question, &params)?
        .into_iter()
        .map(ScoredPassage::from)
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    if results.is_empty() {
        println!("no passage matches the filter");
    }
    for (rank, result) in results.iter().enumerate() {
        print_result(rank + 1, result);
    }
    Ok(())
}

fn print_result(rank: usize, result: &ScoredPassage) {
    let passage = &result.passage;
    let document = &passage.document;
    let title = document.title.as_deref().unwrap_or("(untitled)");
    let date = document.date.as_deref().unwrap_or("undated");
    println!("{rank}. [{:.4}] {title} ({date})", result.score);
    println!(
        "   {}:{}-{}  id {}",
        passage.citation.path, passage.citation.line_start, passage.citation.line_end, passage.id
    );
    println!("   {}\n", passage.text);
}
