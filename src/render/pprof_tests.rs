//! Tests of the pprof writer (apart, to keep pprof.rs under the size rule).
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
    let want = crate::analyze::alloc::heap_stacks(&f, crate::analyze::alloc::Weight::Bytes, true);
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
