//! Baselines: named copies of runs or profile sessions under
//! `<out>/baselines/<name>/`, so they survive the removal of their source.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::runs::{baselines_dir, RunError};
use super::{files, read_json, rfc3339, write_json, OutputError};
use crate::analyze::rundata::{Index, IndexEntry, RunSet, INDEX_SCHEMA_VERSION};

/// Errors of baselines.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The name cannot be a folder name.
    #[error("baseline name '{0}' is not valid: use letters, digits, '.', '_' and '-'")]
    BadName(String),
    /// The source could not be read.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A copy failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// What `baseline.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineInfo {
    /// [`INDEX_SCHEMA_VERSION`] (0 in files
    /// written before it was added).
    #[serde(default)]
    pub schema_version: u32,
    /// Name.
    pub name: String,
    /// The folder it was copied from.
    pub source: String,
    /// When it was saved, UTC.
    pub saved_at: String,
    /// Workloads in it.
    pub workloads: Vec<String>,
    /// Git revision of its runs (of the first run).
    pub git_revision: Option<String>,
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), OutputError> {
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OutputError::Write { path, source }
    };
    let rerr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OutputError::Read { path, source }
    };
    std::fs::create_dir_all(to).map_err(werr(to))?;
    for entry in std::fs::read_dir(from).map_err(rerr(from))? {
        let entry = entry.map_err(rerr(from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ty = entry.file_type().map_err(rerr(&src))?;
        if ty.is_dir() {
            copy_dir(&src, &dst)?;
        } else if ty.is_file() {
            std::fs::copy(&src, &dst).map_err(werr(&dst))?;
        }
    }
    Ok(())
}

/// Saves `set` as baseline `name` under `out`: copies its run folders into
/// `<out>/baselines/<name>/`, replacing a baseline of that name.
pub fn save(out: &Path, name: &str, set: &RunSet) -> Result<PathBuf, BaselineError> {
    let valid = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(BaselineError::BadName(name.to_string()));
    }
    let root = baselines_dir(out);
    std::fs::create_dir_all(&root).map_err(|source| OutputError::Write {
        path: root.clone(),
        source,
    })?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}-"))
        .tempdir_in(&root)
        .map_err(|source| OutputError::Write {
            path: root.clone(),
            source,
        })?;
    let mut index = Index::default();
    for run in &set.runs {
        copy_dir(&run.dir, &tmp.path().join(&run.id))?;
        index.runs.push(IndexEntry {
            run_id: run.id.clone(),
            workload: run.workload.clone(),
        });
    }
    write_json(&tmp.path().join(files::INDEX_JSON), &index)?;
    let info = BaselineInfo {
        schema_version: INDEX_SCHEMA_VERSION,
        name: name.to_string(),
        source: set.label.clone(),
        saved_at: rfc3339(std::time::SystemTime::now()),
        workloads: set.runs.iter().map(|r| r.workload.clone()).collect(),
        git_revision: set.runs.first().and_then(|r| r.git_revision()),
    };
    write_json(&tmp.path().join(files::BASELINE), &info)?;
    let dest = root.join(name);
    let werr = |source| OutputError::Write {
        path: dest.clone(),
        source,
    };
    let staged = tmp.keep();
    if dest.exists() {
        let old = root.join(format!(".{name}-old-{}", std::process::id()));
        std::fs::rename(&dest, &old).map_err(werr)?;
        std::fs::rename(&staged, &dest).map_err(werr)?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&staged, &dest).map_err(werr)?;
    }
    Ok(dest)
}

/// The saved baselines under `out`, by name.
pub fn list(out: &Path) -> Vec<BaselineInfo> {
    let root = baselines_dir(out);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut all: Vec<BaselineInfo> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| read_json(&e.path().join(files::BASELINE), "baseline").ok())
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}
