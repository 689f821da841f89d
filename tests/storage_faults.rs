//! Storage faults under the real `wenda serve` (issue 23, finding 3): the database file, its
//! write-ahead log or its shared memory (`-shm`) that can no longer be written, and a full
//! filesystem. SQLite writes the shared memory through a memory mapping, where such a fault is
//! a SIGBUS rather than an error, so the server runs as a child process whose exit status the
//! tests read. The faults need root (`chattr +i`, `mount -t tmpfs`): where they cannot be made,
//! a test says what it skipped and passes without testing anything.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_error, root, scratch, spawn_server, ServerProcess};
use serde_json::{json, Value};
use wenda::store::DATABASE_FILE;

/// A file made immutable (`chattr +i`) until dropped, even when the test fails.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Self {
        chattr("+i", path).unwrap_or_else(|problem| panic!("{problem}"));
        Self(path.to_owned())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        if let Err(problem) = chattr("-i", &self.0) {
            eprintln!("{problem}");
        }
    }
}

fn chattr(flag: &str, path: &Path) -> Result<(), String> {
    let output = Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
        .map_err(|e| format!("chattr: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "chattr {flag} {}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Whether files in `directory` can be made immutable here (root, and a filesystem with the
/// flag); says why not when they cannot.
fn immutable_files_work(directory: &Path) -> bool {
    let probe = directory.join("chattr-probe");
    File::create(&probe).unwrap();
    let works = match chattr("+i", &probe) {
        Ok(()) => {
            chattr("-i", &probe).unwrap();
            true
        }
        Err(problem) => {
            eprintln!("skipped: no immutable files here ({problem})");
            false
        }
    };
    std::fs::remove_file(&probe).unwrap();
    works
}

/// A tmpfs of a few MiB mounted on a scratch directory until dropped (then unmounted lazily,
/// so a process still holding a file there cannot keep it mounted).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// None, having said why, where the mount is refused (not root, no tmpfs).
    fn mount(name: &str, size: &str) -> Option<Self> {
        let path = scratch(name);
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output();
        match output {
            Ok(output) if output.status.success() => Some(Self(path)),
            Ok(output) => {
                let problem = String::from_utf8_lossy(&output.stderr);
                eprintln!("skipped: mount -t tmpfs refused ({})", problem.trim());
                None
            }
            Err(error) => {
                eprintln!("skipped: mount: {error}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sends a request to the server process. No answer at all means the process died: that is
/// the failure reported, with how it ended.
fn send(
    server: &mut ServerProcess,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let request =
        ureq::request(method, &format!("{}{path}", server.url)).timeout(Duration::from_secs(60));
    let response = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    let response = match response {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => {
            let started = Instant::now();
            let ended = loop {
                match server.child.try_wait().unwrap() {
                    Some(status) => break format!("{status}"),
                    None if started.elapsed() > Duration::from_secs(5) => {
                        break "still running".to_owned()
                    }
                    None => std::thread::sleep(Duration::from_millis(50)),
                }
            };
            panic!("{method} {path} got no answer ({error}); the server: {ended}");
        }
    };
    let status = response.status();
    (status, response.into_json().unwrap())
}

fn assert_alive(server: &mut ServerProcess) {
    assert_eq!(server.child.try_wait().unwrap(), None, "the server exited");
}

/// A document of `paragraphs` identical paragraphs after a first line of its own: the model
/// embeds a couple of passages, whatever its size.
fn document(id: &str, paragraphs: usize) -> Value {
    let body =
        "城市更新与产业升级需要长期规划，兼顾民生、生态与财政的可持续。\n\n".repeat(paragraphs);
    json!({"text": format!("文档{id}的开头。\n\n{body}")})
}

fn put(server: &mut ServerProcess, id: &str, paragraphs: usize) -> (u16, Value) {
    let path = format!("/v1/collections/notes/documents/{id}");
    send(server, "PUT", &path, Some(&document(id, paragraphs)))
}

fn get(server: &mut ServerProcess, id: &str) -> (u16, Value) {
    send(
        server,
        "GET",
        &format!("/v1/collections/notes/documents/{id}"),
        None,
    )
}

/// Document ids a search of `notes` finds.
fn found(server: &mut ServerProcess, query: &str) -> Vec<String> {
    let (status, answer) = send(
        server,
        "POST",
        "/v1/collections/notes/search",
        Some(&json!({"query": query, "top_k": 50})),
    );
    assert_eq!(status, 200, "{answer}");
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["document"]["path"].as_str().unwrap().to_owned())
        .collect()
}

/// A server over `data` that has collection `notes` with document `kept`.
fn serve_notes(data: &Path) -> ServerProcess {
    let mut server = spawn_server(data, &["--no-corpus"]);
    let (status, answer) = send(&mut server, "PUT", "/v1/collections/notes", None);
    assert!(status == 200 || status == 201, "{answer}");
    let (status, answer) = put(&mut server, "kept", 20);
    assert!(status == 200 || status == 201, "{answer}");
    server
}

/// Sends SIGTERM and waits for the exit status.
fn terminate(mut server: ServerProcess) -> std::process::ExitStatus {
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `wenda serve` over `data`, which must refuse to start: its exit status and log.
fn refused_start(data: &Path) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wenda"))
        .current_dir(root())
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--no-corpus",
            "--data-dir",
        ])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wenda serve started over a file it cannot write");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status, reader.join().unwrap())
}

/// With `file` of the data directory made immutable under a running server: a write is a 503
/// `storage_unavailable` that leaves nothing, the server lives on and serves searches (and
/// documents, but those read through the shared memory, which is then refused too); once the
/// file can be written again, writes go through without a restart. Stopped while the fault
/// lasts, the server exits cleanly; it refuses to start again until the file can be written,
/// then serves everything acknowledged.
fn a_file_that_cannot_be_written(file: &str) {
    let data = scratch(&format!("immutable{file}"));
    if !immutable_files_work(&data) {
        return;
    }
    let mut server = serve_notes(&data);
    let path = data.join(format!("{DATABASE_FILE}{file}"));
    {
        let _fault = Immutable::set(&path);
        // Written back, its pages are write-protected again in every mapping, so SQLite's next
        // write through one faults at once (as it would by itself within seconds).
        File::open(&path).unwrap().sync_all().unwrap();
        assert_error(put(&mut server, "refused", 20), 503, "storage_unavailable");
        assert_alive(&mut server);
        assert!(found(&mut server, "城市更新").contains(&"kept".to_owned()));
        let read = get(&mut server, "kept");
        if file == "-shm" {
            assert_error(read, 503, "storage_unavailable");
        } else {
            assert_eq!(read.0, 200, "{}", read.1);
        }
        assert_alive(&mut server);
    }
    assert_error(get(&mut server, "refused"), 404, "unknown_document");
    assert!(!found(&mut server, "文档refused的开头").contains(&"refused".to_owned()));
    let (status, answer) = put(&mut server, "after", 20);
    assert_eq!(
        status, 201,
        "writes go through again once the file can be written: {answer}"
    );

    let fault = Immutable::set(&path);
    File::open(&path).unwrap().sync_all().unwrap();
    let status = terminate(server);
    assert!(
        status.success(),
        "stopped while {file} cannot be written: {status} (signal {:?})",
        status.signal()
    );
    let (status, log) = refused_start(&data);
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&path.display().to_string()) && log.contains("cannot be written"),
        "the refusal names the file: {log}"
    );
    drop(fault);
    let mut server = spawn_server(&data, &["--no-corpus"]);
    for id in ["kept", "after"] {
        let (status, answer) = get(&mut server, id);
        assert_eq!(status, 200, "{id}: {answer}");
    }
    assert_error(get(&mut server, "refused"), 404, "unknown_document");
}

#[test]
fn an_immutable_database_file_is_a_503_not_a_crash() {
    a_file_that_cannot_be_written("");
}

#[test]
fn an_immutable_write_ahead_log_is_a_503_not_a_crash() {
    a_file_that_cannot_be_written("-wal");
}

#[test]
fn an_immutable_shared_memory_file_is_a_503_not_a_crash() {
    a_file_that_cannot_be_written("-shm");
}

/// A filesystem that fills up under the server: writes are 503 `storage_unavailable` and leave
/// nothing, reads go on, and once there is room again writes go through.
#[test]
fn a_full_filesystem_is_a_503_and_writes_resume_once_there_is_room() {
    let Some(mount) = Tmpfs::mount("full-fs", "48m") else {
        return;
    };
    let data = mount.0.join("data");
    let mut server = serve_notes(&data);
    let filler_path = mount.0.join("filler");
    let mut filler = File::create(&filler_path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while filler.write_all(&chunk).is_ok() {}
    drop(filler);

    // Far more pages than the write-ahead log has had so far: it must grow.
    assert_error(
        put(&mut server, "refused", 3000),
        503,
        "storage_unavailable",
    );
    assert_alive(&mut server);
    let (status, answer) = get(&mut server, "kept");
    assert_eq!(status, 200, "{answer}");
    assert!(found(&mut server, "城市更新").contains(&"kept".to_owned()));
    assert_error(get(&mut server, "refused"), 404, "unknown_document");

    std::fs::remove_file(&filler_path).unwrap();
    let (status, answer) = put(&mut server, "refused", 3000);
    assert_eq!(status, 201, "{answer}");
    assert_alive(&mut server);
    drop(server);
}
