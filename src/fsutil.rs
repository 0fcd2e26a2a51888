//! File-system helpers shared by checkpoints, reports and the dataset cache.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Writes a temporary file beside `path`, flushes it to disk, then renames it over `path`; the
/// rename is atomic within one directory, so a reader never sees half a file. The temporary
/// file is removed if anything fails.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
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
    written
}
