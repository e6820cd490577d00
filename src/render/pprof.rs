//! pprof protobuf profiles (`cpu.pb.gz`) for `go tool pprof`, Pyroscope
//! and speedscope: our own message types for `profile.proto`
//! (github.com/google/pprof/blob/main/proto/profile.proto), an encoder from
//! a [`CpuProfile`]. Reading `.pb`/`.pb.gz` files back is
//! [`super::input`]'s job.

use std::collections::HashMap;
use std::io::Write as _;

use prost::Message as _;

use crate::profile::cpu::{CpuProfile, Frame};
use crate::profile::dhat::{frame_function, frame_location, DhatFile};

/// `perftools.profiles.Profile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    /// What each value of a sample measures.
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    /// The samples.
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// Binaries the code came from.
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    /// Program locations.
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    /// Functions.
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Every string of the profile; index 0 is "".
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// Frames to drop (regex, string index).
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    /// Frames to keep (regex, string index).
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    /// Collection start, ns since the epoch.
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    /// Collection length in ns.
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    /// What `period` measures.
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    /// Distance between samples.
    #[prost(int64, tag = "12")]
    pub period: i64,
    /// Free-form comments (string indices).
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    /// The sample type shown by default (string index).
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// `ValueType`: a type and a unit, as string indices.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    /// e.g. "cpu".
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// e.g. "nanoseconds".
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `Sample`: a stack (leaf first) and its values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Location ids, leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One value per sample type.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    /// Labels (the thread name).
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// `Label`: a key with a string or number.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Key (string index).
    #[prost(int64, tag = "1")]
    pub key: i64,
    /// String value (string index).
    #[prost(int64, tag = "2")]
    pub str: i64,
    /// Numeric value.
    #[prost(int64, tag = "3")]
    pub num: i64,
    /// Unit of `num` (string index).
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

/// `Mapping`: a binary, and what of it is already symbolized.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Mapping {
    /// Id (1-based).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Start address.
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    /// End address.
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    /// Offset in the file.
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    /// File name (string index).
    #[prost(int64, tag = "5")]
    pub filename: i64,
    /// Build id (string index).
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    /// Locations carry function names.
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    /// Locations carry file names.
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    /// Locations carry line numbers.
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    /// Locations carry inlined frames.
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// `Location`: one physical frame with its inlined chain.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    /// Id (1-based).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Mapping id.
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    /// Instruction address (0: unknown).
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// Lines, innermost (inlined) first; the last is the caller.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    /// Several symbols folded into one.
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

/// `Line`: a function and a line in it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    /// Function id.
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    /// Line number.
    #[prost(int64, tag = "2")]
    pub line: i64,
    /// Column.
    #[prost(int64, tag = "3")]
    pub column: i64,
}

/// `Function`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    /// Id (1-based).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Name (string index).
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// System (mangled) name (string index). profkit leaves it empty:
    /// the names it stores are demangled already, and `go tool pprof`
    /// treats a function whose `system_name` equals its `name` as not yet
    /// demangled and strips everything between `<` and `>` from it
    /// (`<A as B>::operation` became `::operation`).
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    /// Source file (string index).
    #[prost(int64, tag = "4")]
    pub filename: i64,
    /// First line.
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

/// The one mapping both profiles have: this executable, symbolized by
/// profkit (functions, files, lines and inline frames filled in).
fn exe_mapping(strings: &mut Strings) -> Mapping {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "profkit".to_string());
    Mapping {
        id: 1,
        filename: strings.get(&exe),
        has_functions: true,
        has_filenames: true,
        has_line_numbers: true,
        has_inline_frames: true,
        ..Default::default()
    }
}

#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        let mut s = Strings::default();
        s.get("");
        s
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// The label key of a sample's thread name.
pub const THREAD_LABEL: &str = "thread";

/// Builds the protobuf message of a profile: sample types samples/count
/// and cpu/nanoseconds (cpu = samples × the true sample period measured
/// from process CPU time), period = that true period.
pub fn to_pprof(profile: &CpuProfile) -> Profile {
    to_pprof_labelled(profile, &[])
}

/// [`to_pprof`] with labels of its own on each sample: `labels[i]` (key,
/// value pairs) go on the sample of `profile.stacks[i]`, beside the thread
/// label (`go tool pprof -tagfocus key=value` selects them). Stacks past
/// the end of `labels` get none.
pub fn to_pprof_labelled(profile: &CpuProfile, labels: &[Vec<(String, String)>]) -> Profile {
    let mut strings = Strings::new();
    let mut functions: Vec<Function> = Vec::new();
    let mut function_ids: HashMap<(&str, Option<&str>), u64> = HashMap::new();
    let mut locations: Vec<Location> = Vec::new();
    let mut location_ids: HashMap<&[Frame], u64> = HashMap::new();
    let period = profile.sample_period().0 as i64;
    let samples_t = ValueType {
        r#type: strings.get("samples"),
        unit: strings.get("count"),
    };
    let cpu_t = ValueType {
        r#type: strings.get("cpu"),
        unit: strings.get("nanoseconds"),
    };
    let thread_key = strings.get(THREAD_LABEL);
    let mapping = exe_mapping(&mut strings);
    let mut samples = Vec::with_capacity(profile.stacks.len());
    for (i, stack) in profile.stacks.iter().enumerate() {
        // Split root-first frames into physical frames: a non-inlined
        // frame followed by the frames inlined into it.
        let mut groups: Vec<&[Frame]> = Vec::new();
        let mut start = 0;
        for i in 1..=stack.frames.len() {
            if i == stack.frames.len() || !stack.frames[i].inlined {
                if i > start {
                    groups.push(&stack.frames[start..i]);
                }
                start = i;
            }
        }
        let mut ids = Vec::with_capacity(groups.len());
        for group in groups.into_iter().rev() {
            let next_id = locations.len() as u64 + 1;
            let id = *location_ids.entry(group).or_insert(next_id);
            if id == next_id {
                let line = group
                    .iter()
                    .rev()
                    .map(|f| {
                        let key = (f.function.as_str(), f.file.as_deref());
                        let next_fn = functions.len() as u64 + 1;
                        let function_id = *function_ids.entry(key).or_insert(next_fn);
                        if function_id == next_fn {
                            let name = strings.get(&f.function);
                            functions.push(Function {
                                id: function_id,
                                name,
                                // Empty on purpose: see `Function::system_name`.
                                system_name: 0,
                                filename: strings.get(f.file.as_deref().unwrap_or("")),
                                start_line: 0,
                            });
                        }
                        Line {
                            function_id,
                            line: f.line.map_or(0, i64::from),
                            column: 0,
                        }
                    })
                    .collect();
                locations.push(Location {
                    id,
                    mapping_id: 1,
                    address: 0,
                    line,
                    is_folded: false,
                });
            }
            ids.push(id);
        }
        let mut label = vec![Label {
            key: thread_key,
            str: strings.get(&stack.thread),
            ..Default::default()
        }];
        for (k, v) in labels.get(i).into_iter().flatten() {
            label.push(Label {
                key: strings.get(k),
                str: strings.get(v),
                ..Default::default()
            });
        }
        samples.push(Sample {
            location_id: ids,
            value: vec![stack.samples as i64, stack.samples as i64 * period],
            label,
        });
    }
    let comment = vec![strings.get(&format!(
        "profkit: {} Hz asked, {:.0} samples per CPU-second taken; cpu values are samples x measured CPU time / samples",
        profile.frequency,
        profile.effective_rate()
    ))];
    Profile {
        sample_type: vec![samples_t, cpu_t.clone()],
        sample: samples,
        mapping: vec![mapping],
        location: locations,
        function: functions,
        time_nanos: profile.started_unix_nanos,
        duration_nanos: profile.wall_time.0 as i64,
        period_type: Some(cpu_t.clone()),
        period,
        comment,
        default_sample_type: cpu_t.r#type,
        string_table: strings.table,
        ..Default::default()
    }
}

/// The profile as gzipped protobuf bytes (`cpu.pb.gz`).
pub fn to_pprof_gz(profile: &CpuProfile) -> std::io::Result<Vec<u8>> {
    gzip(&to_pprof(profile).encode_to_vec())
}

/// [`to_pprof_labelled`] as gzipped protobuf bytes.
pub fn to_pprof_labelled_gz(
    profile: &CpuProfile,
    labels: &[Vec<(String, String)>],
) -> std::io::Result<Vec<u8>> {
    gzip(&to_pprof_labelled(profile, labels).encode_to_vec())
}

/// The allocator's own frames, as a `drop_frames` regex: pprof cuts each
/// stack at the first of them from the root, so a heap profile's leaf is
/// the code that asked for memory (`Vec::with_capacity`'s caller, a SQLite
/// function calling `sqlite3Malloc`), not `__rust_alloc` in every stack.
/// pprof anchors it (`^(…)$`) and matches it against names without their
/// argument lists.
pub const ALLOCATOR_FRAMES: &str = concat!(
    r"(__rustc::)?__rust_(alloc|alloc_zeroed|realloc|dealloc).*",
    r"|<?alloc::alloc::.*",
    r"|<alloc::alloc::Global.*",
    r"|<?alloc::raw_vec::.*",
    r"|alloc::boxed::box_new.*|<?alloc::boxed::Box<T>::new.*",
    r"|<?profkit::alloc::.*|profkit::db::sqlite_alloc::.*",
    r"|sqlite3Malloc|sqlite3MallocZero|mallocWithAlarm|sqlite3Realloc|dbReallocFinish",
    r"|sqlite3DbMallocRaw(NN)?|sqlite3DbMallocZero|sqlite3DbRealloc",
);

/// Builds a heap profile in pprof's heap format, as Go writes it and
/// `go tool pprof` and Pyroscope read it: sample types
/// alloc_objects/count, alloc_space/bytes, inuse_objects/count and
/// inuse_space/bytes (the default), one sample per allocation site of the
/// heap profile (`heap.json`, in DHAT's file format, exact or sampled)
/// (in use = live at the end), one location per frame. `period` is the mean
/// sample interval in bytes (0 for an exact profile).
pub fn heap_to_pprof(file: &DhatFile, period: u64) -> Profile {
    let mut strings = Strings::new();
    let mut vt = |t: &str, u: &str| ValueType {
        r#type: strings.get(t),
        unit: strings.get(u),
    };
    let sample_type = vec![
        vt("alloc_objects", "count"),
        vt("alloc_space", "bytes"),
        vt("inuse_objects", "count"),
        vt("inuse_space", "bytes"),
    ];
    let space = vt("space", "bytes");
    let mut functions: Vec<Function> = Vec::new();
    let mut function_ids: HashMap<(&str, &str), u64> = HashMap::new();
    let mut locations: Vec<Location> = Vec::new();
    let mut location_ids: HashMap<usize, u64> = HashMap::new();
    let mut samples = Vec::with_capacity(file.pps.len());
    for pp in &file.pps {
        let mut ids = Vec::with_capacity(pp.fs.len());
        for &f in pp.fs.iter().filter(|&&f| f != 0) {
            let next_id = locations.len() as u64 + 1;
            let id = *location_ids.entry(f).or_insert(next_id);
            if id == next_id {
                let frame = &file.ftbl[f];
                let name = frame_function(frame);
                let mut loc = frame_location(frame).rsplitn(3, ':');
                let (_col, line, path) = (loc.next(), loc.next(), loc.next());
                let (path, line) = match (path, line) {
                    (Some(p), Some(l)) => (p, l.parse().unwrap_or(0)),
                    _ => ("", 0),
                };
                let next_fn = functions.len() as u64 + 1;
                let function_id = *function_ids.entry((name, path)).or_insert(next_fn);
                if function_id == next_fn {
                    let n = strings.get(name);
                    functions.push(Function {
                        id: function_id,
                        name: n,
                        // Empty on purpose: see `Function::system_name`.
                        system_name: 0,
                        filename: strings.get(path),
                        start_line: 0,
                    });
                }
                locations.push(Location {
                    id,
                    mapping_id: 1,
                    address: 0,
                    line: vec![Line {
                        function_id,
                        line,
                        column: 0,
                    }],
                    is_folded: false,
                });
            }
            ids.push(id);
        }
        let v = |x: u64| x.min(i64::MAX as u64) as i64;
        samples.push(Sample {
            location_id: ids,
            value: vec![
                v(pp.tbk),
                v(pp.tb),
                v(pp.ebk.unwrap_or(0)),
                v(pp.eb.unwrap_or(0)),
            ],
            label: Vec::new(),
        });
    }
    let mapping = exe_mapping(&mut strings);
    let note = if period > 0 {
        format!("profkit: sampled heap profile, one sample per {period} bytes on average; values are unbiased estimates; in use = live at the end")
    } else {
        "profkit: exact heap profile (every allocation tracked); in use = live at the end"
            .to_string()
    };
    let comment = vec![strings.get(&note)];
    let drop_frames = strings.get(ALLOCATOR_FRAMES);
    let default_sample_type = sample_type[3].r#type;
    Profile {
        sample_type,
        sample: samples,
        mapping: vec![mapping],
        location: locations,
        function: functions,
        duration_nanos: (file.te as i64).saturating_mul(1000),
        period_type: Some(space),
        period: period.min(i64::MAX as u64) as i64,
        comment,
        drop_frames,
        default_sample_type,
        string_table: strings.table,
        ..Default::default()
    }
}

/// The heap profile as gzipped protobuf bytes (`heap.pb.gz`).
pub fn heap_to_pprof_gz(file: &DhatFile, period: u64) -> std::io::Result<Vec<u8>> {
    gzip(&heap_to_pprof(file, period).encode_to_vec())
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes)?;
    gz.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::cpu::Stack;
    use crate::render::input::{decode, to_folded_counts};
    use crate::units::Nanos;
    use std::path::Path;

    fn f(name: &str, inlined: bool) -> Frame {
        Frame {
            function: name.into(),
            file: Some("src/x.rs".into()),
            line: Some(3),
            module: None,
            inlined,
        }
    }

    #[test]
    fn round_trips_through_gzip_with_inlined_frames() {
        let p = CpuProfile {
            frequency: 199,
            sampler: Default::default(),
            sampler_note: None,
            samples: 12,
            cpu_time: Nanos(120_000_000),
            wall_time: Nanos(130_000_000),
            started_unix_nanos: 1,
            stacks: vec![
                Stack {
                    thread: "pk-worker-0".into(),
                    frames: vec![f("main", false), f("inl", true), f("leaf", false)],
                    samples: 10,
                },
                Stack {
                    thread: "pk-worker-1".into(),
                    frames: vec![f("main", false)],
                    samples: 2,
                },
            ],
        };
        let gz = to_pprof_gz(&p).unwrap();
        let back = decode(&gz, Path::new("x.pb.gz")).unwrap();
        assert_eq!(back.period, 10_000_000);
        assert_eq!(back.sample[0].value, vec![10, 100_000_000]);
        assert!(back.mapping[0].has_functions && back.mapping[0].has_filenames);
        let folded = to_folded_counts(&back, Some("samples"), Path::new("x")).unwrap();
        assert_eq!(folded, crate::render::folded::folded_counts(&p));
        // The inlined frame shares a location with its caller, innermost
        // line first; `main` alone is a location of its own.
        assert_eq!(back.location.len(), 3);
        let inl = back.location.iter().find(|l| l.line.len() == 2).unwrap();
        let name =
            |l: &Line| &back.string_table[back.function[l.function_id as usize - 1].name as usize];
        assert_eq!(name(&inl.line[0]), "inl");
        assert_eq!(name(&inl.line[1]), "main");
    }

    #[test]
    fn heap_profiles_carry_the_four_go_sample_types() {
        let f = crate::profile::dhat::tests::sample();
        let gz = heap_to_pprof_gz(&f, 4096).unwrap();
        let back = decode(&gz, Path::new("heap.pb.gz")).unwrap();
        let types: Vec<(&str, &str)> = back
            .sample_type
            .iter()
            .map(|t| {
                (
                    back.string_table[t.r#type as usize].as_str(),
                    back.string_table[t.unit as usize].as_str(),
                )
            })
            .collect();
        assert_eq!(
            types,
            vec![
                ("alloc_objects", "count"),
                ("alloc_space", "bytes"),
                ("inuse_objects", "count"),
                ("inuse_space", "bytes")
            ]
        );
        assert_eq!(
            back.string_table[back.default_sample_type as usize],
            "inuse_space"
        );
        assert_eq!(back.period, 4096);
        assert_eq!(
            back.string_table[back.drop_frames as usize],
            ALLOCATOR_FRAMES
        );
        assert!(back.function.iter().all(|f| f.system_name == 0));
        assert_eq!(back.sample[0].value, vec![10, 960, 10, 960]);
        assert_eq!(back.sample[1].value, vec![100, 100, 0, 0]);
        // Stacks read back as the folded allocation stacks, by bytes.
        let folded = to_folded_counts(&back, Some("alloc_space"), Path::new("x")).unwrap();
        let want =
            crate::analyze::alloc::heap_stacks(&f, crate::analyze::alloc::Weight::Bytes, true);
        // (`;` in a name: `,` there, `:` in heap.folded.)
        let mut got: Vec<(String, u64)> = folded
            .into_iter()
            .map(|(s, n)| (s.replace(',', ":"), n))
            .collect();
        got.sort();
        let mut want: Vec<(String, u64)> = want.into_iter().collect();
        want.sort();
        assert_eq!(got, want);
        // Lines keep their source line.
        let leaf = &back.location[0].line[0];
        assert_eq!(leaf.line, 1);
    }

    #[test]
    fn damage_is_reported_with_an_offset() {
        let p = Path::new("bad.pb");
        let e = decode(&[0x0a, 0x50, 0x01], p).unwrap_err().to_string();
        assert!(e.contains("bad.pb") && e.contains("offset 0"), "{e}");
        let e = decode(&[0x1f, 0x8b, 0x00], p).unwrap_err().to_string();
        assert!(e.contains("gzip"), "{e}");
    }
}
