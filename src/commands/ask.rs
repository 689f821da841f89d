//! `wenda ask`: answer one question from the command line, with sentences quoted from the
//! documents (or written by the LLM given with `--llm-base-url`) and their numbered sources,
//! through the same service as `POST /v1/answer`.

use wenda::http::wire::AnswerResponse;
use wenda::service::{AnswerMode, AnswerOutcome, AnswerRequest, DEFAULT_COLLECTION};

use super::open::{self, LlmArgs, ServiceOptions, StoreArgs};
use super::query::{run_blocking, FilterArgs};
use super::ModelArgs;

#[derive(clap::Args)]
pub struct AskArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    llm: LlmArgs,
    /// The question, in any language the model knows.
    question: String,
    /// The collection to answer from.
    #[arg(long, default_value = DEFAULT_COLLECTION)]
    collection: String,
    /// Passages the answer is drawn from (1 to 100; 5 when absent).
    #[arg(long)]
    top_k: Option<usize>,
    /// Most sentences in the answer, the best included (1 to 10; 3 when absent).
    #[arg(long)]
    max_sentences: Option<usize>,
    #[command(flatten)]
    filter: FilterArgs,
    /// What to say when the documents do not answer (default: in the question's language).
    #[arg(long)]
    no_answer_text: Option<String>,
    /// Print the answer as the JSON of `POST /v1/answer` instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: AskArgs) -> anyhow::Result<()> {
    let options = ServiceOptions {
        no_answer_text: args.no_answer_text,
        llm: args.llm.config()?,
        ..ServiceOptions::default()
    };
    let service = open::service(&args.model, &args.store, options)?;
    let request = AnswerRequest {
        mode: AnswerMode::Auto,
        top_k: args.top_k,
        max_sentences: args.max_sentences,
        filter: args.filter.into(),
        ..AnswerRequest::new(args.question)
    };
    let outcome = run_blocking(service.answer(&args.collection, request))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&AnswerResponse::from(outcome))?
        );
    } else {
        print_answer(&outcome);
    }
    Ok(())
}

fn print_answer(outcome: &AnswerOutcome) {
    println!("{}\n", outcome.text);
    for citation in &outcome.citations {
        let passage = &citation.passage;
        let title = passage.article.title.as_deref().unwrap_or("(untitled)");
        let date = passage
            .article
            .date
            .as_ref()
            .map_or("undated", |d| d.label());
        println!(
            "[{}] {title} ({date}) {}",
            citation.index,
            passage.citation.location()
        );
    }
    if !outcome.found {
        println!("Passages searched:");
        for (rank, hit) in outcome.passages.iter().enumerate() {
            let passage = &hit.ranked.passage;
            let title = passage.article.title.as_deref().unwrap_or("(untitled)");
            println!("  {}. {title} ({})", rank + 1, passage.id);
        }
    }
}
