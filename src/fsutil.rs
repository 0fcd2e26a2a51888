//! File-system helpers shared by checkpoints, reports and the dataset cache: atomic writes and
//! the lock that keeps two runs out of one results folder.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes a temporary file beside `path`, flushes it to disk, renames it over `path`, then
/// flushes the folder so the rename itself survives a power cut. The rename is atomic within
/// one folder, so a reader (or a run killed mid-write) sees either the old file or the new
/// one, never half of one. The temporary file is removed if anything fails.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = temporary_beside(path);
    let written = fs::File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        // Best effort: the write already failed, and that is the error worth reporting.
        let _ = fs::remove_file(&temporary);
    }
    written?;
    sync_folder_of(path)
}

/// A name beside `path` that no other writer uses at the same time: the process id tells
/// processes apart, the counter tells apart threads of one process writing the same file.
fn temporary_beside(path: &Path) -> PathBuf {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let write = WRITES.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{file_name}.tmp-{}-{write}", std::process::id()))
}

/// Flushes the folder entry of `path` (its rename) to disk. Only Unix can open a folder as a
/// file to sync it; elsewhere the rename is as durable as the platform makes it.
fn sync_folder_of(path: &Path) -> io::Result<()> {
    if cfg!(unix) {
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        fs::File::open(folder)?.sync_all()?;
    }
    Ok(())
}

/// The lock file a run holds in its results folder.
pub const LOCK_FILE: &str = ".fer.lock";

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{folder} is in use by another fer run (process {pid}); wait for it to finish, pick \
         another --results folder, or delete {lock} if that process is not fer"
    )]
    Held {
        folder: PathBuf,
        pid: u32,
        lock: PathBuf,
    },
    #[error("cannot lock {folder}: {reason}")]
    Io { folder: PathBuf, reason: io::Error },
}

/// Holds a folder for one process: a lock file with the holder's process id, created only if
/// absent and removed when this value drops (with the folder, if the lock created it and it is
/// still empty). A lock left by a process that is gone (killed, crashed) is taken over.
#[derive(Debug)]
pub struct FolderLock {
    lock: PathBuf,
    created_folder: Option<PathBuf>,
}

impl FolderLock {
    /// Creates `folder` if needed and locks it, or says which process holds it.
    pub fn acquire(folder: &Path) -> Result<FolderLock, LockError> {
        let io_error = |reason| LockError::Io {
            folder: folder.to_path_buf(),
            reason,
        };
        let created_folder = (!folder.exists()).then(|| folder.to_path_buf());
        fs::create_dir_all(folder).map_err(io_error)?;
        let lock = folder.join(LOCK_FILE);
        // The pid goes into a file of this process's own first, which is then linked as the
        // lock: the link fails if a lock exists, and a lock never exists without its pid.
        let claim = temporary_beside(&lock);
        fs::write(&claim, format!("{}\n", std::process::id())).map_err(io_error)?;
        let locked = Self::link(&claim, &lock, folder);
        let _ = fs::remove_file(&claim);
        locked.map(|()| FolderLock {
            lock,
            created_folder,
        })
    }

    fn link(claim: &Path, lock: &Path, folder: &Path) -> Result<(), LockError> {
        let io_error = |reason| LockError::Io {
            folder: folder.to_path_buf(),
            reason,
        };
        // Two tries: the second follows the removal of a stale lock.
        for _ in 0..2 {
            match fs::hard_link(claim, lock) {
                Ok(()) => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(io_error(error)),
            }
            match holder(lock) {
                Some(pid) if process_is_alive(pid) => {
                    return Err(LockError::Held {
                        folder: folder.to_path_buf(),
                        pid,
                        lock: lock.to_path_buf(),
                    })
                }
                // Its holder is gone: take it over. Two runs taking over the same stale lock
                // in the same instant is the one race left open.
                _ => match fs::remove_file(lock) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(io_error(error)),
                },
            }
        }
        Err(io_error(io::Error::other(
            "its lock file keeps coming back from processes that are gone",
        )))
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // Best effort: a lock that cannot be removed is stale once this process exits, and a
        // folder that is not empty is kept.
        let _ = fs::remove_file(&self.lock);
        if let Some(folder) = &self.created_folder {
            let _ = fs::remove_dir(folder);
        }
    }
}

/// The process id written in a lock file, if it holds one.
fn holder(lock: &Path) -> Option<u32> {
    fs::read_to_string(lock).ok()?.trim().parse().ok()
}

/// Whether process `pid` exists. Linux answers through /proc; elsewhere every holder is taken
/// to be alive, so a stale lock there is removed by hand (the error names it).
fn process_is_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}
