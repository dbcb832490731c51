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

/// The file that marks a run folder in use; it holds the owner's pid and start time.
pub const LOCK_FILE: &str = "dk-distill.lock";

/// The first line of every run folder's `config.toml`: what tells a run folder of ours.
pub const CONFIG_HEADER: &str = "# Effective settings of this run";

/// Why a folder cannot become a run folder. Each message names the folder and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("--out {0}: exists and is not a folder; choose a new or empty folder")]
    NotAFolder(PathBuf),
    #[error(
        "--out {dir}: {file} is a file, so no folder can be made under it; choose another folder"
    )]
    UnderAFile { dir: PathBuf, file: PathBuf },
    #[error(
        "--out {0}: the folder is not empty and is not a dk-distill run folder (no config.toml of ours); choose a new or empty folder"
    )]
    Foreign(PathBuf),
    #[error(
        "--out {0}: holds an earlier run (config.toml, checkpoints, results); pass --overwrite to replace it, or choose another folder"
    )]
    EarlierRun(PathBuf),
    #[error(
        "--out {dir}: another run (pid {pid}, started {started}) is using this folder; wait for it to end or choose another folder (lock file {lock})"
    )]
    Locked {
        dir: PathBuf,
        lock: PathBuf,
        pid: String,
        started: String,
    },
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        // In the message, not the error chain, so that `{:#}` names it once.
        cause: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Io {
        path: path.to_path_buf(),
        cause: source,
    }
}

/// What `--out DIR` holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    /// Absent or empty (a stale lock file aside): free to use.
    Free,
    /// A run folder of ours with an earlier run in it.
    EarlierRun,
    /// Something else.
    Foreign,
}

/// Looks at `dir` without changing anything.
pub fn out_state(dir: &Path) -> Result<OutState, RunDirError> {
    if !dir.exists() {
        // The nearest existing ancestor must be a folder for the run folder to be made.
        let existing = dir.ancestors().skip(1).find(|a| a.exists());
        if let Some(file) = existing.filter(|a| !a.is_dir()) {
            return Err(RunDirError::UnderAFile {
                dir: dir.to_path_buf(),
                file: file.to_path_buf(),
            });
        }
        return Ok(OutState::Free);
    }
    if !dir.is_dir() {
        return Err(RunDirError::NotAFolder(dir.to_path_buf()));
    }
    let entries = std::fs::read_dir(dir).map_err(io_error(dir))?;
    let mut empty = true;
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        if entry.file_name() != LOCK_FILE {
            empty = false;
            break;
        }
    }
    if empty {
        return Ok(OutState::Free);
    }
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap_or_default();
    Ok(if config.starts_with(CONFIG_HEADER) {
        OutState::EarlierRun
    } else {
        OutState::Foreign
    })
}

/// The pid and start time written in a lock file (`unknown` where unreadable).
fn lock_holder(path: &Path) -> (String, String) {
    let held = std::fs::read_to_string(path).unwrap_or_default();
    let field = |name: &str| {
        held.lines()
            .find_map(|line| line.strip_prefix(name))
            .map_or("unknown".to_string(), |v| v.trim().to_string())
    };
    (field("pid "), field("started "))
}

/// Checks that `--out DIR` may be used: absent, empty, or (with `overwrite`) a run folder
/// of ours, and not locked by another live run. Nothing is changed.
pub fn check_out(dir: &Path, overwrite: bool) -> Result<(), RunDirError> {
    let lock = dir.join(LOCK_FILE);
    if lock.is_file() {
        let (pid, started) = lock_holder(&lock);
        let other = pid.parse::<u32>().map_or(true, |p| p != std::process::id());
        let alive = pid.parse::<u32>().map_or(true, process_alive);
        if other && alive {
            return Err(RunDirError::Locked {
                dir: dir.to_path_buf(),
                lock,
                pid,
                started,
            });
        }
    }
    match out_state(dir)? {
        OutState::Free => Ok(()),
        OutState::EarlierRun if overwrite => Ok(()),
        OutState::EarlierRun => Err(RunDirError::EarlierRun(dir.to_path_buf())),
        OutState::Foreign => Err(RunDirError::Foreign(dir.to_path_buf())),
    }
}

/// Whether process `pid` is running. Only Linux can tell (`/proc`); elsewhere every pid
/// counts as alive, so a lock is never taken from a live run.
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// The lock of a run folder: created with `create_new` (so two runs never both hold it),
/// removed when dropped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of `dir`. A lock left by a process that is no longer running is taken
    /// over; the returned note says so.
    pub fn acquire(dir: &Path, now: SystemTime) -> Result<(RunLock, Option<String>), RunDirError> {
        let path = dir.join(LOCK_FILE);
        let contents = format!("pid {}\nstarted {}\n", std::process::id(), iso8601_utc(now));
        let mut note = None;
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    file.write_all(contents.as_bytes())
                        .and_then(|()| file.sync_all())
                        .map_err(io_error(&path))?;
                    return Ok((RunLock { path }, note));
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    let (pid, started) = lock_holder(&path);
                    let dead = pid.parse::<u32>().is_ok_and(|p| !process_alive(p));
                    if !dead || note.is_some() {
                        return Err(RunDirError::Locked {
                            dir: dir.to_path_buf(),
                            lock: path,
                            pid,
                            started,
                        });
                    }
                    std::fs::remove_file(&path).map_err(io_error(&path))?;
                    note = Some(format!(
                        "{}: took over the lock of a run that is no longer running (pid {pid}, started {started})",
                        dir.display()
                    ));
                }
                Err(err) => return Err(io_error(&path)(err)),
            }
        }
        unreachable!("the second attempt returns")
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The folder of one run, locked while the run holds it.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
    lock: Option<std::sync::Arc<RunLock>>,
}

impl PartialEq for RunDir {
    fn eq(&self, other: &RunDir) -> bool {
        self.root == other.root
    }
}

impl RunDir {
    /// Creates and locks the run folder: `out` when given (absent, empty, or with
    /// `overwrite` an earlier run folder of ours; see [`check_out`]), else a new
    /// `runs/<UTC timestamp>` (with `-2`, `-3`, ... if that one exists). Returns a note when
    /// a stale lock was taken over.
    pub fn create(
        out: Option<&Path>,
        now: SystemTime,
        overwrite: bool,
    ) -> Result<(RunDir, Option<String>), RunDirError> {
        Self::open(out, now, overwrite, true)
    }

    /// [`RunDir::create`] for a resumed run, whose settings are the folder's own: its
    /// results.json and report.html, if any, stay until the run writes new ones, so a
    /// resume that fails loses nothing.
    pub fn resume(out: &Path, now: SystemTime) -> Result<(RunDir, Option<String>), RunDirError> {
        Self::open(Some(out), now, true, false)
    }

    fn open(
        out: Option<&Path>,
        now: SystemTime,
        overwrite: bool,
        remove_results: bool,
    ) -> Result<(RunDir, Option<String>), RunDirError> {
        let root = match out {
            Some(dir) => {
                check_out(dir, overwrite)?;
                std::fs::create_dir_all(dir).map_err(io_error(dir))?;
                dir.to_path_buf()
            }
            None => {
                let runs = Path::new("runs");
                std::fs::create_dir_all(runs).map_err(io_error(runs))?;
                Self::create_fresh(runs, &folder_timestamp(now)).map_err(io_error(runs))?
            }
        };
        let (lock, note) = RunLock::acquire(&root, now)?;
        // Checked again under the lock: another run may have filled the folder meanwhile.
        if let Some(dir) = out {
            check_out(dir, overwrite)?;
        }
        // The earlier run's results must not pass for this run's if this one fails.
        if let Some(dir) = out.filter(|_| remove_results) {
            for stale in ["results.json", "report.html"] {
                match std::fs::remove_file(dir.join(stale)) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                        return Err(io_error(&dir.join(stale))(err));
                    }
                    _ => {}
                }
            }
        }
        Ok((
            RunDir {
                root,
                lock: Some(std::sync::Arc::new(lock)),
            },
            note,
        ))
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

    /// Opens an existing folder as a run folder (not locked).
    pub fn at(root: impl Into<PathBuf>) -> RunDir {
        RunDir {
            root: root.into(),
            lock: None,
        }
    }

    /// Whether this run holds the folder's lock.
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
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
    use crate::testutil::temp_dir;
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
        let dir = temp_dir("rundir-atomic");
        let run = RunDir::at(dir.path());
        let path = run.write("nested/results.json", b"first").unwrap();
        run.write("nested/results.json", b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("results.json")]);
        // Writing into a missing folder fails cleanly and leaves nothing.
        assert!(write_atomic(&dir.path().join("absent/file"), b"x").is_err());
    }

    #[test]
    fn config_toml_starts_with_the_run_folder_header() {
        let text = crate::config::effective_config_toml(&crate::config::RunConfig::default());
        assert!(text.starts_with(CONFIG_HEADER), "{text}");
    }

    #[test]
    fn fresh_folders_never_collide() {
        let dir = temp_dir("rundir-fresh");
        let first = RunDir::create_fresh(dir.path(), "20250101-000000Z").unwrap();
        let second = RunDir::create_fresh(dir.path(), "20250101-000000Z").unwrap();
        assert!(first.ends_with("20250101-000000Z"));
        assert!(second.ends_with("20250101-000000Z-2"));
        let out = dir.path().join("explicit/run");
        let (run, _) = RunDir::create(Some(&out), at(0), false).unwrap();
        assert!(run.root().is_dir());
        assert_eq!(run.subdir("checkpoints").unwrap(), out.join("checkpoints"));
    }

    #[test]
    fn out_refuses_foreign_folders_and_earlier_runs_without_overwrite() {
        let dir = temp_dir("rundir-out");
        let foreign = dir.path().join("photos");
        std::fs::create_dir_all(&foreign).unwrap();
        std::fs::write(foreign.join("holiday.jpg"), b"x").unwrap();
        let text = RunDir::create(Some(&foreign), at(0), true)
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("--out ") && text.contains("is not a dk-distill run folder"),
            "{text}"
        );
        assert!(foreign.join("holiday.jpg").is_file() && !foreign.join(LOCK_FILE).exists());

        let earlier = dir.path().join("earlier");
        std::fs::create_dir_all(&earlier).unwrap();
        std::fs::write(
            earlier.join("config.toml"),
            format!("{CONFIG_HEADER} (...)\n"),
        )
        .unwrap();
        std::fs::write(earlier.join("results.json"), b"{}").unwrap();
        let text = RunDir::create(Some(&earlier), at(0), false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            text,
            format!(
                "--out {}: holds an earlier run (config.toml, checkpoints, results); pass --overwrite to replace it, or choose another folder",
                earlier.display()
            )
        );
        let (run, note) = RunDir::create(Some(&earlier), at(0), true).unwrap();
        assert!(run.is_locked() && note.is_none());
        assert!(
            !earlier.join("results.json").exists(),
            "stale results are removed"
        );
        assert!(earlier.join("config.toml").is_file());
        // A second run on the same folder is refused, naming the holder.
        let text = RunDir::create(Some(&earlier), at(0), true)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains(&format!(
                "another run (pid {}, started 1970-01-01T00:00:00Z)",
                std::process::id()
            )),
            "{text}"
        );
        drop(run);
        assert!(
            !earlier.join(LOCK_FILE).exists(),
            "the lock goes with the run"
        );

        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            RunDir::create(Some(&file), at(0), true),
            Err(RunDirError::NotAFolder(_))
        ));
        let under = file.join("run").join("deeper");
        let text = check_out(&under, false).unwrap_err().to_string();
        assert_eq!(
            text,
            format!(
                "--out {}: {} is a file, so no folder can be made under it; choose another folder",
                under.display(),
                file.display()
            )
        );
    }

    #[test]
    fn a_resumed_run_keeps_the_earlier_results_until_it_writes_its_own() {
        let dir = temp_dir("rundir-resume");
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("config.toml"), format!("{CONFIG_HEADER} (...)\n")).unwrap();
        std::fs::write(run.join("results.json"), b"{}").unwrap();
        let (resumed, _) = RunDir::resume(&run, at(0)).unwrap();
        assert!(resumed.is_locked() && run.join("results.json").is_file());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_stale_lock_of_a_dead_process_is_taken_over_with_a_note() {
        let dir = temp_dir("rundir-stale");
        // Pids are below 2^22 on Linux: this one never runs.
        std::fs::write(
            dir.path().join(LOCK_FILE),
            "pid 4294967295\nstarted 2020-01-01T00:00:00Z\n",
        )
        .unwrap();
        let (run, note) = RunDir::create(Some(dir.path()), at(0), false).unwrap();
        let note = note.expect("a note");
        assert!(
            note.contains("took over the lock") && note.contains("pid 4294967295"),
            "{note}"
        );
        let held = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(
            held.starts_with(&format!("pid {}\n", std::process::id())),
            "{held}"
        );
        drop(run);
    }
}
