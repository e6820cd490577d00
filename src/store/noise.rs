//! The noise model measured on this machine (`profkit noise`), stored as
//! `<out>/noise.json`, which `compare`, `profile --baseline` and `bisect`
//! read when it is there (or the file `--noise-model` names).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::OutputError;
use crate::analyze::replicates::NoiseModel;

/// The file name of the measured model in the output folder.
pub const NOISE_FILE: &str = "noise.json";

/// Version of the file's layout.
pub const NOISE_SCHEMA_VERSION: u32 = 1;

/// What `noise.json` holds: the model and its layout's version.
#[derive(Debug, Serialize, Deserialize)]
struct NoiseFile {
    noise_model_version: u32,
    #[serde(flatten)]
    model: NoiseModel,
}

/// Why a noise model was not written.
#[derive(Debug, thiserror::Error)]
pub enum NoiseWriteError {
    /// A file in the way that is not a noise model.
    #[error("refusing to write '{}': it exists and is not a profkit noise model; pass another --output or move it away", path.display())]
    NotAModel {
        /// The path.
        path: PathBuf,
    },
    /// The write failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Reads a noise model, checking its figures.
pub fn read_noise_model(path: &Path) -> Result<NoiseModel, OutputError> {
    let file: NoiseFile = super::read_json(path, "profkit noise model")?;
    let invalid = |reason: String| OutputError::Invalid {
        path: path.to_path_buf(),
        what: "profkit noise model",
        reason,
    };
    if file.noise_model_version != NOISE_SCHEMA_VERSION {
        return Err(invalid(format!(
            "noise_model_version {} (this profkit reads {NOISE_SCHEMA_VERSION})",
            file.noise_model_version
        )));
    }
    let m = file.model;
    let ok = |x: f64| x.is_finite() && x >= 0.0;
    if let Some((k, v)) = m.sd.iter().find(|(_, v)| !ok(**v)) {
        return Err(invalid(format!("sd of {k} is {v}, not a spread")));
    }
    if !ok(m.share_sd_pp) {
        return Err(invalid(format!("share_sd_pp is {}", m.share_sd_pp)));
    }
    if !(m.df.is_finite() && m.df > 0.0) {
        return Err(invalid(format!("df is {}, not > 0", m.df)));
    }
    Ok(m)
}

/// Whether a model may be written to `path`: nothing there, or a noise
/// model (returned: the one it would replace).
pub fn check_writable(path: &Path) -> Result<Option<NoiseModel>, NoiseWriteError> {
    if !path.exists() {
        return Ok(None);
    }
    read_noise_model(path)
        .map(Some)
        .map_err(|_| NoiseWriteError::NotAModel {
            path: path.to_path_buf(),
        })
}

/// Writes `model` to `path` atomically. A file already there is replaced
/// only when it is a noise model itself (returned, to say so); anything
/// else is refused.
pub fn write_noise_model(
    path: &Path,
    model: &NoiseModel,
) -> Result<Option<NoiseModel>, NoiseWriteError> {
    let previous = check_writable(path)?;
    let file = NoiseFile {
        noise_model_version: NOISE_SCHEMA_VERSION,
        model: model.clone(),
    };
    super::write_json(path, &file)?;
    Ok(previous)
}

/// The model a comparison uses: the file `explicit` names (which must be
/// a valid model), else `<out>/noise.json` when it exists, else the
/// built-in one. A model read from a file names it in its source.
pub fn noise_model_for(explicit: Option<&Path>, out: &Path) -> Result<NoiseModel, OutputError> {
    let default = out.join(NOISE_FILE);
    let path = match explicit {
        Some(p) => p,
        None if default.exists() => default.as_path(),
        None => return Ok(NoiseModel::default()),
    };
    let mut m = read_noise_model(path)?;
    m.source = format!("{}, from {}", m.source, path.display());
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_round_trips_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(NOISE_FILE);
        let m = NoiseModel {
            source: "measured on this machine, today".into(),
            ..NoiseModel::default()
        };
        assert!(write_noise_model(&p, &m).unwrap().is_none());
        assert_eq!(read_noise_model(&p).unwrap(), m);
        // A second measurement replaces the first, and says so.
        assert!(write_noise_model(&p, &m).unwrap().is_some());
        let got = noise_model_for(None, dir.path()).unwrap();
        assert!(got.source.ends_with(&format!("from {}", p.display())));
        // No file: the built-in model; a named file must exist.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            noise_model_for(None, empty.path()).unwrap(),
            NoiseModel::default()
        );
        let missing = empty.path().join("nope.json");
        assert!(noise_model_for(Some(&missing), empty.path()).is_err());
        // A user's file is neither read as a model nor overwritten.
        let other = dir.path().join("notes.json");
        std::fs::write(&other, "{\"mine\": 1}").unwrap();
        assert!(read_noise_model(&other).is_err());
        let e = write_noise_model(&other, &m).unwrap_err();
        assert!(e.to_string().contains("not a profkit noise model"), "{e}");
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "{\"mine\": 1}");
        // Figures that are no spread.
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("\"df\": 50.0", "\"df\": -1.0")).unwrap();
        let e = read_noise_model(&p).unwrap_err().to_string();
        assert!(e.contains("df is -1"), "{e}");
    }
}
