//! The data directory's format marker: what lets the daemon tell a fresh directory
//! from a damaged one. A database created by the daemon holds a marker record, and a
//! `FORMAT` file beside it says a database was created there. Where the file is, the
//! database must open and hold the marker; otherwise the daemon refuses to start (a
//! zero-length or truncated database file would otherwise start an empty daemon, every
//! tenant and token gone, or panic inside sled).

use std::path::Path;

use super::LedgerError;
use super::keys::{self, kind};

/// The marker file's name and its contents.
const FORMAT_FILE: &str = "FORMAT";
const FORMAT_TEXT: &str = "aer-data 1\n";
/// The marker record's value in the `meta` tree.
const MARKER: &[u8] = b"aer-data 1";

fn corrupt(data: &Path, why: impl Into<String>) -> LedgerError {
    LedgerError::Corrupt {
        path: data.display().to_string(),
        why: why.into(),
    }
}

/// Open the database under `data` (creating it in a fresh directory) and its `meta`
/// tree, checking the format marker.
pub(super) fn open(data: &Path) -> Result<(sled::Db, sled::Tree), LedgerError> {
    let marker_file = data.join(FORMAT_FILE);
    let db_dir = data.join("db");
    let marked = marker_file.exists();
    let fresh = !marked && !db_dir.exists();
    if marked && !db_dir.exists() {
        return Err(corrupt(data, "the database (db/) is missing"));
    }
    if marked {
        match std::fs::read_to_string(&marker_file) {
            Ok(text) if text == FORMAT_TEXT => {}
            Ok(text) => {
                return Err(corrupt(
                    data,
                    format!("{FORMAT_FILE} says {:?}, not {FORMAT_TEXT:?}", text.trim()),
                ));
            }
            Err(e) => return Err(corrupt(data, format!("cannot read {FORMAT_FILE}: {e}"))),
        }
    }
    let db = open_sled(&db_dir).map_err(|e| match e {
        // Another process (or a handle still closing) holds the database: not damage.
        OpenError::Sled(e @ sled::Error::Io(_)) => LedgerError::Sled(e),
        OpenError::Sled(e) => corrupt(data, format!("the database cannot be opened: {e}")),
        OpenError::Panicked(why) => corrupt(
            data,
            format!("the database is damaged (opening it failed: {why})"),
        ),
    })?;
    let meta = db.open_tree("meta")?;
    let key = keys::key(kind::FORMAT, &[]);
    match meta.get(&key)? {
        Some(v) if v.as_ref() == MARKER => {}
        Some(v) => {
            return Err(corrupt(
                data,
                format!("the database's format is {:?}", String::from_utf8_lossy(&v)),
            ));
        }
        // A fresh directory, or one of a version before the marker that is in use (it
        // has records): marked now.
        None if fresh || (!marked && !meta.is_empty()) => {
            meta.insert(&key, MARKER)?;
        }
        None if marked => {
            return Err(corrupt(
                data,
                "the database holds no AER records (empty or damaged)",
            ));
        }
        None => {
            return Err(corrupt(
                data,
                "db/ exists but holds no AER records (empty or damaged)",
            ));
        }
    }
    if !marked {
        db.flush()?;
        write_marker_file(&marker_file).map_err(|source| LedgerError::DataDir {
            path: marker_file.display().to_string(),
            source,
        })?;
    }
    Ok((db, meta))
}

enum OpenError {
    Sled(sled::Error),
    Panicked(String),
}

/// sled's open, its panics (on a truncated file) turned into an error.
fn open_sled(dir: &Path) -> Result<sled::Db, OpenError> {
    let dir = dir.to_owned();
    match crate::panic::catch(move || sled::Config::new().path(dir).open()) {
        Ok(opened) => opened.map_err(OpenError::Sled),
        Err(why) => Err(OpenError::Panicked(why)),
    }
}

fn write_marker_file(path: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(FORMAT_TEXT.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The host secret behind the plugins' WASI random seeds, created at random on first
/// use and kept in `meta`.
pub(super) fn random_secret(meta: &sled::Tree) -> Result<[u8; 32], LedgerError> {
    let key = keys::key(kind::RANDOM_SECRET, &[]);
    if let Some(v) = meta.get(&key)?
        && let Ok(secret) = <[u8; 32]>::try_from(v.as_ref())
    {
        return Ok(secret);
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    meta.insert(&key, &secret)?;
    Ok(secret)
}
