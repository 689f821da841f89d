//! The three files of a database in WAL mode (the database, its write-ahead log and the log's
//! shared-memory index), looked at from outside SQLite: whether they can still be written, and
//! how much disk they take together.
//!
//! SQLite writes the shared-memory index through a memory mapping, where a file that can no
//! longer be written (made immutable, its filesystem remounted read-only) is not an error but
//! a SIGBUS, which kills the whole server. So each use of a connection first asks the kernel
//! whether the files can be written: `access(2)` neither opens them nor closes a descriptor
//! (closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
//! included). A fault that strikes between that check and SQLite's next write through the
//! mapping still ends the process; the check narrows that window to microseconds.

use std::path::{Path, PathBuf};

use rustix::fs::{access, Access};

use super::super::{Result, StoreError};

pub(super) struct DatabaseFiles {
    database: PathBuf,
    log: PathBuf,
    shared_memory: PathBuf,
}

/// Bytes each file takes on disk (0 for a file that does not exist).
#[derive(Clone, Copy, Debug)]
pub(super) struct FileSizes {
    pub database: u64,
    pub log: u64,
    pub shared_memory: u64,
}

impl FileSizes {
    pub fn total(&self) -> u64 {
        self.database + self.log + self.shared_memory
    }
}

impl std::fmt::Display for FileSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes (database {}, write-ahead log {}, shared memory {})",
            self.total(),
            self.database,
            self.log,
            self.shared_memory
        )
    }
}

impl DatabaseFiles {
    pub fn new(database: &Path) -> Self {
        let beside = |suffix: &str| {
            let mut name = database.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        Self {
            log: beside("-wal"),
            shared_memory: beside("-shm"),
            database: database.to_owned(),
        }
    }

    /// Before a write: every file that exists can be written (SQLite creates the others, and
    /// reports its own failure to as an error).
    pub fn check_writable(&self) -> Result<()> {
        [&self.database, &self.log, &self.shared_memory]
            .into_iter()
            .try_for_each(|path| writable(path))
    }

    /// Before a read: a reader in WAL mode writes its read mark into the shared memory.
    pub fn check_readable(&self) -> Result<()> {
        writable(&self.shared_memory)
    }

    pub fn sizes(&self) -> FileSizes {
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        FileSizes {
            database: size(&self.database),
            log: size(&self.log),
            shared_memory: size(&self.shared_memory),
        }
    }
}

fn writable(path: &Path) -> Result<()> {
    match access(path, Access::WRITE_OK) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(error) => Err(StoreError::Unavailable(format!(
            "{} cannot be written: {}",
            path.display(),
            std::io::Error::from(error)
        ))),
    }
}
