//! Input readers: profile files a user hands to `profkit flamegraph` —
//! folded stacks, pprof protobuf (`.pb`, `.pb.gz`), dhat JSON — with the
//! format detected in one place ([`detect`]) and every line or field
//! checked. Writers are the other modules of [`crate::render`].

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use prost::Message as _;

use super::pprof::{Function, Location, Profile};
use crate::analyze::alloc::{heap_stacks, Weight};
use crate::analyze::stacks::{self, Folded};
use crate::profile::dhat::DhatFile;

/// Errors reading a profile file to render.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read.
    #[error("cannot read '{}': {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A bad line in a folded file.
    #[error("'{}' line {line}: {why}", path.display())]
    Folded {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// A damaged pprof file.
    #[error("'{}'{}: not a valid pprof profile: {why}", path.display(), offset.map(|o| format!(" at byte offset {o}")).unwrap_or_default())]
    Pprof {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damage in the (decompressed) protobuf, when known.
        offset: Option<usize>,
        /// What is wrong.
        why: String,
    },
    /// A dhat file that is not valid.
    #[error("'{}' is not a valid dhat heap profile: {why}", path.display())]
    Dhat {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Weights whose total does not fit in 64 bits.
    #[error("'{}': the weights add up to more than 64 bits can hold: a damaged profile", path.display())]
    Overflow {
        /// The file.
        path: PathBuf,
    },
    /// A file in none of the formats profkit draws (e.g. `bench.json`).
    #[error("'{}' is {what}, not a profile: profkit draws folded stacks (`.folded`), pprof (`.pb`, `.pb.gz`) and dhat heap profiles (`heap.json`)", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What it looks like instead.
        what: &'static str,
    },
    /// No samples at all.
    #[error("'{}' holds no samples: nothing to draw (profile a longer run: raise --ops/--duration)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// inferno failed.
    #[error("cannot render '{}': {why}", path.display())]
    Render {
        /// The file.
        path: PathBuf,
        /// inferno's message.
        why: String,
    },
}

/// The formats a profile file can be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Folded stacks text.
    Folded,
    /// pprof protobuf, maybe gzipped.
    Pprof,
    /// dhat JSON (a heap profile: weights are bytes).
    Dhat,
}

/// The format of a file from its name and first bytes: JSON is dhat,
/// gzip, `.pb`/`.pb.gz` or non-UTF-8 bytes are pprof, anything else is
/// folded text.
pub fn detect(path: &Path, bytes: &[u8]) -> Format {
    let name = path.to_string_lossy();
    if bytes.trim_ascii_start().starts_with(b"{") {
        Format::Dhat
    } else if name.ends_with(".pb")
        || name.ends_with(".pb.gz")
        || bytes.starts_with(&[0x1f, 0x8b])
        || (std::str::from_utf8(bytes).is_err() && !name.ends_with(".folded"))
    {
        Format::Pprof
    } else {
        Format::Folded
    }
}

/// Stacks read from a file, with what their weights count.
#[derive(Clone, Debug, PartialEq)]
pub struct Stacks {
    /// The format the file was in.
    pub format: Format,
    /// The stacks.
    pub stacks: Folded,
}

impl Stacks {
    /// What the weights count: bytes for a heap profile, samples otherwise.
    pub fn unit(&self) -> &'static str {
        match self.format {
            Format::Dhat => "bytes",
            Format::Folded | Format::Pprof => "samples",
        }
    }
}

fn folded_text(bytes: &[u8], path: &Path) -> Result<Folded, InputError> {
    let text = std::str::from_utf8(bytes).map_err(|e| InputError::Folded {
        path: path.to_path_buf(),
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        why: "not UTF-8 text".into(),
    })?;
    stacks::parse_folded(text).map_err(|e| InputError::Folded {
        path: path.to_path_buf(),
        line: e.line,
        why: e.why,
    })
}

/// The folded stacks of a profile file: a pprof file (`.pb`, `.pb.gz`, or
/// gzip/binary content) or folded text. Every line or field is checked.
pub fn read_stacks(path: &Path) -> Result<Stacks, InputError> {
    let bytes = std::fs::read(path).map_err(|source| InputError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_stacks(path, &bytes)
}

/// [`read_stacks`] of bytes already read from `path`.
pub fn parse_stacks(path: &Path, bytes: &[u8]) -> Result<Stacks, InputError> {
    let format = detect(path, bytes);
    let stacks = match format {
        Format::Dhat => {
            // JSON without dhat's version key is some other JSON file
            // (`bench.json`, `cpu.json`): say what profkit reads instead
            // of which dhat field is missing.
            if !bytes.windows(17).any(|w| w == b"\"dhatFileVersion\"") {
                return Err(InputError::Unsupported {
                    path: path.to_path_buf(),
                    what: "JSON without a dhatFileVersion field",
                });
            }
            // A dhat heap profile (heap.json): bytes allocated per stack.
            let file = DhatFile::parse(bytes).map_err(|e| InputError::Dhat {
                path: path.to_path_buf(),
                why: match e {
                    Ok(json) => json.to_string(),
                    Err(reason) => reason,
                },
            })?;
            heap_stacks(&file, Weight::Bytes, false)
        }
        Format::Pprof => {
            let profile = decode(bytes, path)?;
            let kind = profile
                .sample_type
                .iter()
                .any(|t| {
                    profile
                        .string_table
                        .get(t.r#type as usize)
                        .map(String::as_str)
                        == Some("samples")
                })
                .then_some("samples");
            to_folded_counts(&profile, kind, path)?
        }
        Format::Folded => folded_text(bytes, path)?,
    };
    match stacks::total(&stacks) {
        Some(0) => Err(InputError::Empty {
            path: path.to_path_buf(),
        }),
        Some(_) => Ok(Stacks { format, stacks }),
        None => Err(InputError::Overflow {
            path: path.to_path_buf(),
        }),
    }
}

/// Decodes a `.pb` or `.pb.gz` file's bytes (gzip is recognised by its
/// magic number); errors name `path` and, for protobuf damage, the byte
/// offset of the first bad top-level field.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Profile, InputError> {
    let bad = |offset: Option<usize>, why: String| InputError::Pprof {
        path: path.to_path_buf(),
        offset,
        why,
    };
    let raw;
    let data = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| bad(None, format!("broken gzip stream: {e}")))?;
        raw = out;
        &raw[..]
    } else {
        bytes
    };
    let profile = Profile::decode(data).map_err(|e| bad(first_bad_field(data), e.to_string()))?;
    let n = profile.string_table.len() as i64;
    let idx_ok = |i: i64| (0..n).contains(&i);
    if profile.sample_type.is_empty()
        || !profile
            .sample_type
            .iter()
            .all(|t| idx_ok(t.r#type) && idx_ok(t.unit))
    {
        return Err(bad(
            None,
            "no valid sample types: not a pprof profile".into(),
        ));
    }
    Ok(profile)
}

/// Offset of the first top-level field whose key or length runs past the
/// end or has an invalid wire type.
fn first_bad_field(data: &[u8]) -> Option<usize> {
    fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *data.get(*pos)?;
            *pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut pos = 0;
    while pos < data.len() {
        let at = pos;
        let Some(key) = varint(data, &mut pos) else {
            return Some(at);
        };
        let ok = match key & 7 {
            0 => varint(data, &mut pos).is_some(),
            1 => {
                pos += 8;
                pos <= data.len()
            }
            2 => match varint(data, &mut pos) {
                Some(len) => {
                    pos = pos.saturating_add(len as usize);
                    pos <= data.len()
                }
                None => false,
            },
            5 => {
                pos += 4;
                pos <= data.len()
            }
            _ => false,
        };
        if !ok || key >> 3 == 0 {
            return Some(at);
        }
    }
    None
}

/// Folded stacks of a decoded profile, root first, with the thread label
/// (when present) as the root frame, weighted by the sample type `kind`
/// (e.g. "samples"; the first sample type when absent).
pub fn to_folded_counts(
    profile: &Profile,
    kind: Option<&str>,
    path: &Path,
) -> Result<Folded, InputError> {
    let bad = |why: String| InputError::Pprof {
        path: path.to_path_buf(),
        offset: None,
        why,
    };
    let st = &profile.string_table;
    let s = |i: i64| -> Result<&str, InputError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| st.get(i))
            .map(String::as_str)
            .ok_or_else(|| bad(format!("string index {i} is out of the table")))
    };
    let value_index = match kind {
        Some(k) => profile
            .sample_type
            .iter()
            .position(|t| s(t.r#type).ok() == Some(k))
            .ok_or_else(|| bad(format!("no sample type '{k}'")))?,
        None => 0,
    };
    let functions: HashMap<u64, &Function> = profile.function.iter().map(|f| (f.id, f)).collect();
    let locations: HashMap<u64, &Location> = profile.location.iter().map(|l| (l.id, l)).collect();
    let mut out = Folded::new();
    for sample in &profile.sample {
        let Some(&v) = sample.value.get(value_index) else {
            return Err(bad("a sample has fewer values than sample types".into()));
        };
        if v <= 0 {
            continue;
        }
        let mut frames: Vec<String> = Vec::new();
        for id in sample.location_id.iter().rev() {
            let loc = locations
                .get(id)
                .ok_or_else(|| bad(format!("a sample names location {id}, which is missing")))?;
            if loc.line.is_empty() {
                frames.push(format!("{:#x}", loc.address));
            }
            for line in loc.line.iter().rev() {
                let name = match functions.get(&line.function_id) {
                    Some(f) => s(f.name)?,
                    None => "[unknown]",
                };
                frames.push(crate::profile::cpu::clean_name(name));
            }
        }
        let thread = sample
            .label
            .iter()
            .find(|l| s(l.key).ok() == Some(super::pprof::THREAD_LABEL))
            .map(|l| s(l.str))
            .transpose()?;
        let mut line = String::new();
        if let Some(t) = thread {
            line.push_str(&crate::profile::cpu::clean_name(t));
        }
        for f in frames {
            if !line.is_empty() {
                line.push(';');
            }
            line.push_str(&f);
        }
        if line.is_empty() {
            line.push_str("[no frames]");
        }
        let total: &mut u64 = out.entry(line).or_default();
        *total = total
            .checked_add(v as u64)
            .ok_or_else(|| InputError::Overflow {
                path: path.to_path_buf(),
            })?;
    }
    if out.is_empty() {
        return Err(InputError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected_in_one_place() {
        let p = Path::new("x");
        assert_eq!(detect(p, b"  {\"dhatFileVersion\":2}"), Format::Dhat);
        assert_eq!(detect(p, &[0x1f, 0x8b, 1]), Format::Pprof);
        assert_eq!(detect(Path::new("a.pb"), b"main 1"), Format::Pprof);
        assert_eq!(detect(p, b"main;f 3\n"), Format::Folded);
        // Not UTF-8 but named .folded: a folded file with a bad byte, not pprof.
        assert_eq!(
            detect(Path::new("a.folded"), &[b'a', 0xff, b' ', b'1']),
            Format::Folded
        );
    }

    #[test]
    fn a_non_utf8_folded_file_is_a_folded_error() {
        let path = Path::new("x.folded");
        let e = parse_stacks(path, &[b'a', b' ', b'1', b'\n', 0xff, b' ', b'2'])
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn other_json_names_the_formats_profkit_reads() {
        let path = Path::new("bench.json");
        let e = parse_stacks(path, br#"{"schema_version":1,"ops":3}"#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("missing field"), "{e}");
        for format in ["folded", "pprof", "dhat"] {
            assert!(e.contains(format), "{e}");
        }
        // A damaged dhat file is still called one.
        let e = parse_stacks(path, br#"{"dhatFileVersion":2}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid dhat heap profile"), "{e}");
    }
}
