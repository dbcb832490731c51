//! The run folder and atomic file writes.
//!
//! Every file a run produces (checkpoints, cached logits, `results.json`, `report.html`) is
//! written to a temporary file in the same folder, flushed to disk, then renamed over its
//! final name, so an interrupted run leaves either the old file or the new one, never half.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `bytes` to `path` atomically: temporary sibling, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let temp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (the civil-from-days algorithm: eras of 400 years starting on March 1st).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// UTC date and time fields of `time`: (year, month, day, hour, minute, second).
fn utc_fields(time: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let seconds = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    };
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400) as u32;
    (
        year,
        month,
        day,
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
    )
}

/// ISO 8601 UTC, e.g. `2025-03-01T14:05:09Z` (for results.json).
pub fn iso8601_utc(time: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(time);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A folder-name-safe UTC timestamp, e.g. `20250301-140509Z`.
pub fn folder_timestamp(time: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(time);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}Z")
}

/// The folder of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates the run folder: `out` when given (it may already exist, to resume or redo a
    /// run), else a new `runs/<UTC timestamp>` (with `-2`, `-3`, ... if that one exists).
    pub fn create(out: Option<&Path>, now: SystemTime) -> std::io::Result<RunDir> {
        let root = match out {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                dir.to_path_buf()
            }
            None => {
                std::fs::create_dir_all("runs")?;
                Self::create_fresh(Path::new("runs"), &folder_timestamp(now))?
            }
        };
        Ok(RunDir { root })
    }

    /// Creates `parent/stem`, or `parent/stem-2`, ... whichever does not exist yet.
    pub fn create_fresh(parent: &Path, stem: &str) -> std::io::Result<PathBuf> {
        for attempt in 1.. {
            let name = if attempt == 1 {
                stem.to_string()
            } else {
                format!("{stem}-{attempt}")
            };
            let candidate = parent.join(name);
            // create_dir (not _all) fails when the folder exists, so two runs never share one.
            match std::fs::create_dir(&candidate) {
                Ok(()) => return Ok(candidate),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        }
        unreachable!("the attempt counter is unbounded")
    }

    /// Opens an existing folder as a run folder.
    pub fn at(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `relative` inside the run folder.
    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.root.join(relative)
    }

    /// Creates (if needed) and returns a sub-folder, e.g. `checkpoints`.
    pub fn subdir(&self, name: &str) -> std::io::Result<PathBuf> {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Writes a file of the run folder atomically, creating its parent folders.
    pub fn write(&self, relative: impl AsRef<Path>, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        write_atomic(&path, bytes)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::time::Duration;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn utc_dates_by_hand() {
        assert_eq!(iso8601_utc(at(0)), "1970-01-01T00:00:00Z");
        // 2000-02-29 (a leap day of a century leap year): 11,016 days after the epoch.
        assert_eq!(
            iso8601_utc(at(11_016 * 86_400 + 3_661)),
            "2000-02-29T01:01:01Z"
        );
        // 2024-12-31 23:59:59 = 20,088 days + 86,399 s; the next second is 2025-01-01.
        assert_eq!(
            iso8601_utc(at(20_088 * 86_400 + 86_399)),
            "2024-12-31T23:59:59Z"
        );
        assert_eq!(folder_timestamp(at(20_089 * 86_400)), "20250101-000000Z");
        assert_eq!(
            iso8601_utc(UNIX_EPOCH - Duration::from_secs(1)),
            "1969-12-31T23:59:59Z"
        );
    }

    #[test]
    fn atomic_write_replaces_whole_files_and_leaves_no_temp() {
        let dir = TempDir::new("rundir-atomic");
        let run = RunDir::at(dir.path());
        let path = run.write("nested/results.json", b"first").unwrap();
        run.write("nested/results.json", b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("results.json")]);
        // Writing into a missing folder fails cleanly and leaves nothing.
        assert!(write_atomic(&dir.join("absent/file"), b"x").is_err());
    }

    #[test]
    fn fresh_folders_never_collide() {
        let dir = TempDir::new("rundir-fresh");
        let first = RunDir::create_fresh(dir.path(), "20250101-000000Z").unwrap();
        let second = RunDir::create_fresh(dir.path(), "20250101-000000Z").unwrap();
        assert!(first.ends_with("20250101-000000Z"));
        assert!(second.ends_with("20250101-000000Z-2"));
        let out = dir.join("explicit/run");
        let run = RunDir::create(Some(&out), at(0)).unwrap();
        assert!(run.root().is_dir());
        assert_eq!(run.subdir("checkpoints").unwrap(), out.join("checkpoints"));
    }
}
