//! The vector cache over the real model and the seed corpus: a restart embeds nothing, an edit
//! re-embeds only the passage it touched, and a damaged cache is rebuilt without changing results.

use std::fs;
use std::path::{Path, PathBuf};

use wenda::corpus::{self, ChunkConfig};
use wenda::embedding::{
    Backend, BatchLimits, CacheOpened, Embedder, ModelFingerprint, ModelLocator, VectorCache,
    DEFAULT_MODEL,
};
use wenda::search::{self, BuildStats, SearchEngine};

struct Fixture {
    embedder: Embedder,
    fingerprint: ModelFingerprint,
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let files = ModelLocator::new(root.join("models"))
            .resolve(DEFAULT_MODEL)
            .unwrap();
        let embedder = Embedder::load(&files, Backend::Native, BatchLimits::default()).unwrap();
        let fingerprint = ModelFingerprint::of(&files, &embedder).unwrap();
        let dir = std::env::temp_dir().join(format!("wenda-cache-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("corpus")).unwrap();
        fs::copy(
            root.join("seeds/000_6b84f5fb9e9426be.txt"),
            dir.join("corpus/news.txt"),
        )
        .unwrap();
        Self {
            embedder,
            fingerprint,
            dir,
        }
    }

    fn build(&self) -> (SearchEngine, BuildStats, CacheOpened) {
        let report = corpus::load(
            &[self.dir.join("corpus")],
            &ChunkConfig::new(&self.embedder),
        );
        let (mut cache, opened) = VectorCache::open(
            &self.dir.join("cache"),
            "corpus",
            self.fingerprint,
            self.embedder.dimensions(),
        );
        let (engine, stats) =
            search::build(report, &self.embedder, &mut cache, &mut |_, _| {}).unwrap();
        assert_eq!(stats.cache_error, None);
        (engine, stats, opened)
    }

    fn cache_file(&self) -> PathBuf {
        let entries: Vec<_> = fs::read_dir(self.dir.join("cache"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(
            entries.len(),
            1,
            "one cache file, no temporaries: {entries:?}"
        );
        entries[0].clone()
    }
}

fn ranking(engine: &SearchEngine, question: &[f32]) -> Vec<(String, f32)> {
    let params = search::SearchParams {
        top_k: 100,
        mode: search::Mode::Dense,
        ..Default::default()
    };
    let question = search::Question {
        text: "",
        vector: Some(question),
    };
    engine
        .search(&question, &params)
        .unwrap()
        .into_iter()
        .map(|r| (r.passage.id.to_string(), r.score))
        .collect()
}

#[test]
fn restarts_edits_and_damage() {
    let fixture = Fixture::new();
    let (first, stats, opened) = fixture.build();
    assert!(matches!(opened, CacheOpened::Empty));
    let passages = first.passages().len();
    assert_eq!(stats.embedded, passages);

    let (again, stats, opened) = fixture.build();
    assert!(matches!(opened, CacheOpened::Loaded(n) if n == passages));
    assert_eq!((stats.cached, stats.embedded), (passages, 0));
    let probe = fixture
        .embedder
        .embed_one(wenda::embedding::Role::Query, "人工智能")
        .unwrap()
        .vector;
    assert_eq!(ranking(&first, &probe), ranking(&again, &probe));

    // Edit one paragraph: only its passage is embedded again, and its old vector is dropped.
    let path = fixture.dir.join("corpus/news.txt");
    let text = fs::read_to_string(&path).unwrap();
    let edited = text.replacen("会议还研究了其他事项。", "会议还研究了其他重要事项。", 1);
    assert_ne!(text, edited);
    fs::write(&path, edited).unwrap();
    let (_, stats, _) = fixture.build();
    assert_eq!(stats.embedded, 1, "{stats:?}");
    assert_eq!(stats.evicted, 1, "{stats:?}");

    // Damage the file: reported, rebuilt, same answers.
    let file = fixture.cache_file();
    let mut bytes = fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&file, bytes).unwrap();
    let (rebuilt, stats, opened) = fixture.build();
    assert!(matches!(opened, CacheOpened::Discarded(_)), "{opened:?}");
    assert_eq!(stats.embedded, rebuilt.passages().len());
    let (reloaded, stats, _) = fixture.build();
    assert_eq!(stats.embedded, 0);
    assert_eq!(ranking(&rebuilt, &probe), ranking(&reloaded, &probe));
    fixture.cache_file();
    fs::remove_dir_all(&fixture.dir).unwrap();
}
