//! `wenda backup`, `wenda export` and `wenda import`: copies of a data directory and moves of a
//! collection between machines.
//!
//! An export is JSON lines: a header `{"wenda_export": 1, "collection", "model", "dimensions"}`,
//! then one document per line as the import route takes it, plus `"vectors"`: the passages'
//! vectors by the SHA-256 of their text (hex), as base64 of little-endian f32. Imported under the
//! same model, no passage is embedded again; under another, the vectors are ignored.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use serde::{Deserialize, Serialize};
use wenda::embedding::{ModelFingerprint, TextKey};
use wenda::service::{DocumentLine, ImportLine, DEFAULT_COLLECTION};
use wenda::store::{self, JobStatus};

use super::open::{self, ServiceOptions, StoreArgs};
use super::ModelArgs;

#[derive(clap::Args)]
pub struct BackupArgs {
    /// The data directory to copy (a server may be using it).
    #[arg(long, env = "WENDA_DATA_DIR", default_value = ".wenda-data")]
    data_dir: PathBuf,
    /// The file to write: a SQLite database; put it in place of `wenda.sqlite3` to restore.
    #[arg(long)]
    to: PathBuf,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The data directory (a server may be using it).
    #[arg(long, env = "WENDA_DATA_DIR", default_value = ".wenda-data")]
    data_dir: PathBuf,
    /// The collection to export.
    #[arg(long, default_value = DEFAULT_COLLECTION)]
    collection: String,
    /// Where to write the JSON lines (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The data directory to import into (not one a server is using: import through its API).
    #[arg(long, env = "WENDA_DATA_DIR", default_value = ".wenda-data")]
    data_dir: PathBuf,
    /// A PostgreSQL database to import into instead (servers may be using it).
    #[arg(long = "store", env = "WENDA_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The collection to import into (created if missing); default: the export's.
    #[arg(long)]
    collection: Option<String>,
    /// An export written by `wenda export`.
    file: PathBuf,
}

/// The first line of an export.
#[derive(Serialize, Deserialize)]
struct Header {
    wenda_export: u32,
    collection: String,
    /// The fingerprint of the model the vectors were made with (hex).
    model: String,
    dimensions: usize,
}

/// A document line with its vectors.
#[derive(Serialize, Deserialize)]
struct ExportLine {
    #[serde(flatten)]
    document: DocumentLine,
    /// Vector per text key (hex SHA-256), as base64 of little-endian f32.
    #[serde(default)]
    vectors: BTreeMap<String, String>,
}

pub fn backup(args: BackupArgs) -> anyhow::Result<()> {
    store::backup(&args.data_dir, &args.to).with_context(|| {
        format!(
            "backing up {} to {}",
            args.data_dir.display(),
            args.to.display()
        )
    })?;
    eprintln!(
        "backed up {} to {}",
        args.data_dir.display(),
        args.to.display()
    );
    Ok(())
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let (files, embedder) = args.model.resolve_and_load(args.model.backend.into())?;
    let fingerprint = ModelFingerprint::cached(&files, &embedder)?;
    let sink: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(sink);
    let header = Header {
        wenda_export: 1,
        collection: args.collection.clone(),
        model: fingerprint.hex(),
        dimensions: embedder.dimensions(),
    };
    writeln!(out, "{}", serde_json::to_string(&header)?)?;
    let base64 = base64::engine::general_purpose::STANDARD;
    let count = store::export(
        &args.data_dir,
        &args.collection,
        fingerprint,
        &mut |exported| {
            let line = ExportLine {
                document: DocumentLine::of(&exported.record),
                vectors: exported
                    .vectors
                    .iter()
                    .map(|(key, vector)| {
                        let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                        (key.hex(), base64.encode(bytes))
                    })
                    .collect(),
            };
            writeln!(
                out,
                "{}",
                serde_json::to_string(&line).map_err(std::io::Error::other)?
            )
        },
    )
    .with_context(|| format!("exporting collection {:?}", args.collection))?;
    out.flush()?;
    eprintln!("exported {count} documents of {:?}", args.collection);
    Ok(())
}

pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let mut lines = BufReader::new(file).lines();
    let header: Header = serde_json::from_str(&lines.next().context("the export is empty")??)
        .context("the first line is not a wenda export header")?;
    if header.wenda_export != 1 {
        bail!(
            "export format {} is not one this wenda reads",
            header.wenda_export
        );
    }
    let collection = args.collection.unwrap_or(header.collection);
    let store_args = StoreArgs {
        data_dir: args.data_dir,
        database_url: args.database_url,
        corpus: Vec::new(),
        no_corpus: true,
        max_store_bytes: None,
        ef_search: store::DEFAULT_EF_SEARCH,
        max_file_bytes: wenda::corpus::DEFAULT_MAX_FILE_BYTES,
        follow_symlinks: false,
        read_database_url: None,
        quantize_from: wenda::index::DEFAULT_QUANTIZE_FROM,
    };
    let service = open::service(&args.model, &store_args, ServiceOptions::default())?;
    let same_model = header.model == service.fingerprint().hex();
    if !same_model {
        eprintln!("the export was made with another model: its passages will be embedded again");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(service.create_collection(&collection))?;
    let base64 = base64::engine::general_purpose::STANDARD;
    let mut import = Vec::new();
    let mut vectors = Vec::new();
    for (index, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 2;
        let exported: ExportLine = serde_json::from_str(&line)
            .with_context(|| format!("{}:{number}", args.file.display()))?;
        if same_model {
            for (key, encoded) in &exported.vectors {
                let key = TextKey::from_hex(key)
                    .with_context(|| format!("line {number}: {key:?} is not a text key"))?;
                let bytes = base64
                    .decode(encoded)
                    .with_context(|| format!("line {number}"))?;
                let vector = bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                vectors.push((key, vector));
            }
        }
        import.push(ImportLine {
            file: None,
            line: number,
            body: Ok(serde_json::to_string(&exported.document)?),
        });
    }
    let reused = vectors.len();
    runtime.block_on(service.store_vectors(&collection, vectors))?;
    let job = runtime.block_on(service.submit_import(&collection, import))?;
    let report = loop {
        let report = runtime.block_on(service.job(&job.id))?;
        if matches!(
            report.record.status,
            JobStatus::Completed | JobStatus::Failed
        ) {
            break report;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for error in &report.errors {
        eprintln!("line {}: {}: {}", error.line, error.code, error.message);
    }
    let record = report.record;
    eprintln!(
        "imported {} of {} documents into {collection:?} ({} passages; {} vectors brought, {} embedded)",
        record.done, record.documents, record.passages, reused, record.embedded
    );
    if let Some(error) = record.error {
        bail!("the import stopped: {error}");
    }
    Ok(())
}
