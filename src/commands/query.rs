//! `wenda query`: answer one question from the command line, the quickest way to try wenda. It
//! goes through the same service as the HTTP API, so it checks and answers alike.

use anyhow::Context;
use wenda::index::{Filter, IsoDate};
use wenda::service::{SearchHit, SearchRequest, DEFAULT_COLLECTION};

use super::open::{self, ServiceOptions, StoreArgs};
use super::{ModeArg, ModelArgs};

#[derive(clap::Args)]
pub struct QueryArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// The question, in any language the model knows.
    question: String,
    /// The collection to search.
    #[arg(long, default_value = DEFAULT_COLLECTION)]
    collection: String,
    /// How many passages to show (1 to 100).
    #[arg(long)]
    top_k: Option<usize>,
    /// How to rank: by meaning, by shared words, or both.
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    mode: ModeArg,
    #[command(flatten)]
    filter: FilterArgs,
    /// Print the results as JSON lines instead of text.
    #[arg(long)]
    json: bool,
}

/// The filters of a search, as flags (`wenda query`, `wenda ask`).
#[derive(clap::Args)]
pub struct FilterArgs {
    /// Only passages of this document (its id or path as shown in results).
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
}

impl From<FilterArgs> for Filter {
    fn from(args: FilterArgs) -> Self {
        Filter {
            document: args.document,
            title: args.title,
            date_from: args.date_from,
            date_to: args.date_to,
            ..Filter::default()
        }
    }
}

fn parse_date(text: &str) -> Result<IsoDate, String> {
    IsoDate::try_from(text.to_owned())
}

pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    let service = open::service(&args.model, &args.store, ServiceOptions::default())?;
    let request = SearchRequest {
        top_k: args.top_k,
        mode: args.mode.into(),
        filter: args.filter.into(),
        highlight: false,
        ..SearchRequest::new(args.question)
    };
    let outcome = run_blocking(service.search(&args.collection, request))?;
    if outcome.truncated {
        eprintln!(
            "note: the question is longer than the model's {} tokens; only its beginning was used",
            service.model().max_tokens
        );
    }
    if outcome.results.is_empty() && !args.json {
        println!("no passage matches");
    }
    for (rank, hit) in outcome.results.iter().enumerate() {
        if args.json {
            println!("{}", json_line(hit));
        } else {
            print_result(rank + 1, hit);
        }
    }
    Ok(())
}

/// Runs one service call to completion from the command line.
pub fn run_blocking<T, E: Into<anyhow::Error>>(
    call: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(call).map_err(Into::into)
}

fn json_line(hit: &SearchHit) -> serde_json::Value {
    let ranked = &hit.ranked;
    let passage = &ranked.passage;
    let article = &passage.article;
    serde_json::json!({
        "score": ranked.score,
        "dense": ranked.dense,
        "lexical": ranked.lexical,
        "id": passage.id.as_str(),
        "text": passage.text,
        "title": article.title,
        "date": article.date.as_ref().map(|d| d.label()),
        "source": article.source,
        "document": passage.citation.path,
        "line_start": passage.citation.line_start,
        "line_end": passage.citation.line_end,
        "page_start": passage.citation.page_start,
        "page_end": passage.citation.page_end,
    })
}

fn print_result(rank: usize, hit: &SearchHit) {
    let passage = &hit.ranked.passage;
    let article = &passage.article;
    let title = article.title.as_deref().unwrap_or("(untitled)");
    let date = article.date.as_ref().map_or("undated", |d| d.label());
    println!("{rank}. [{:.4}] {title} ({date})", hit.ranked.score);
    println!("   {}  id {}", passage.citation.location(), passage.id);
    println!("   {}\n", passage.text);
}
