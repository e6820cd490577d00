//! Reads a heap profile in pprof form (`/debug/pprof/heap` of
//! `profkit::service`, or [`super::pprof::heap_to_pprof`]'s) back into the
//! dhat model the leak analysis works on: one site per sample, its frames
//! innermost first, its live bytes (`inuse_space`) as the bytes live at the
//! end.

use std::collections::HashMap;

use super::pprof::Profile;
use crate::profile::dhat::{DhatFile, DhatPp};

/// The sites of a heap profile, or `None` when it has no `inuse_space`
/// sample type (a CPU profile, say).
pub fn heap_to_dhat(profile: &Profile) -> Option<DhatFile> {
    let st = &profile.string_table;
    let s = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| st.get(i))
            .map_or("", String::as_str)
    };
    let index = |name: &str| profile.sample_type.iter().position(|t| s(t.r#type) == name);
    let inuse = index("inuse_space")?;
    let inuse_objects = index("inuse_objects");
    let (alloc, alloc_objects) = (index("alloc_space"), index("alloc_objects"));
    let functions: HashMap<u64, (&str, &str)> = profile
        .function
        .iter()
        .map(|f| (f.id, (s(f.name), s(f.filename))))
        .collect();
    let locations: HashMap<u64, &super::pprof::Location> =
        profile.location.iter().map(|l| (l.id, l)).collect();
    let mut ftbl = vec!["[root]".to_string()];
    let mut frame_index: HashMap<String, usize> = HashMap::new();
    let mut pps = Vec::with_capacity(profile.sample.len());
    let value = |v: &[i64], i: Option<usize>| {
        i.and_then(|i| v.get(i))
            .map_or(0, |&x| u64::try_from(x).unwrap_or(0))
    };
    for sample in &profile.sample {
        let mut fs = Vec::new();
        // pprof: leaf first, inlined callees before their callers.
        for loc in sample.location_id.iter().filter_map(|id| locations.get(id)) {
            for line in &loc.line {
                let (name, file) = functions
                    .get(&line.function_id)
                    .copied()
                    .unwrap_or(("[unknown]", ""));
                let frame = if file.is_empty() {
                    name.to_string()
                } else {
                    format!("{name} ({file}:{}:0)", line.line)
                };
                let next = ftbl.len();
                let i = *frame_index.entry(frame.clone()).or_insert(next);
                if i == next {
                    ftbl.push(frame);
                }
                fs.push(i);
            }
        }
        let eb = value(&sample.value, Some(inuse));
        pps.push(DhatPp {
            tb: value(&sample.value, alloc),
            tbk: value(&sample.value, alloc_objects),
            tl: None,
            mb: None,
            mbk: None,
            gb: Some(eb),
            gbk: None,
            eb: Some(eb),
            ebk: Some(value(&sample.value, inuse_objects)),
            fs,
        });
    }
    Some(DhatFile {
        dhatFileVersion: 2,
        mode: "rust-heap".into(),
        verb: "Allocated".into(),
        bklt: false,
        bkacc: false,
        tu: "µs".into(),
        Mtu: "microseconds".into(),
        tuth: None,
        cmd: String::new(),
        pid: 0,
        tg: None,
        te: 0,
        pps,
        ftbl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heap_profile_reads_back_site_by_site() {
        let file = crate::profile::dhat::tests::sample();
        let pb = super::super::pprof::heap_to_pprof(&file, 0);
        let back = heap_to_dhat(&pb).unwrap();
        assert_eq!(back.pps.len(), file.pps.len());
        for (a, b) in file.pps.iter().zip(&back.pps) {
            assert_eq!(a.eb, b.eb);
            let names = |f: &DhatFile, pp: &DhatPp| -> Vec<String> {
                pp.fs
                    .iter()
                    .filter(|&&i| i != 0)
                    .map(|&i| f.function(i).to_string())
                    .collect()
            };
            assert_eq!(names(&file, a), names(&back, b));
        }
        // A CPU profile has no live bytes.
        let cpu = Profile {
            sample_type: pb.sample_type[..2].to_vec(),
            ..pb
        };
        assert!(heap_to_dhat(&cpu).is_none());
    }
}
