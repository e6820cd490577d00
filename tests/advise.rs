//! `profkit advise` through the real binary on small data: it proposes the
//! index a user's database lacks with a measured gain and interval, never
//! writes the user's file, says so when there is nothing to fix, and
//! refuses bad input in one line.

mod common;

use std::path::Path;

/// `profkit run` once to make a populated database at `db`.
fn populate(dir: &Path, db: &Path, rows: &str) {
    common::profkit(dir)
        .args([
            "run",
            "tenant-isolation",
            "--rows",
            rows,
            "--ops",
            "50",
            "--db",
        ])
        .arg(db)
        .arg("--out")
        .arg(dir.join("profiles"))
        .assert()
        .success();
}

fn advise(dir: &Path, args: &[&str]) -> std::process::Output {
    common::profkit(dir)
        .arg("advise")
        .args(args)
        .arg("--out")
        .arg(dir.join("profiles"))
        .output()
        .unwrap()
}

#[test]
fn advise_proposes_the_missing_sender_index_with_a_measured_gain_and_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("user.db");
    populate(dir.path(), &db, "10000");
    {
        // The user's database lacks the indexes the sender search needs.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "DROP INDEX emails_tenant_sender; DROP INDEX emails_sender_received; PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let side_files = |p: &Path| {
        ["-wal", "-shm"]
            .iter()
            .filter(|s| Path::new(&format!("{}{s}", p.display())).exists())
            .count()
    };
    let sides_before = side_files(&db);
    let db_arg = db.to_string_lossy().to_string();
    let out = advise(
        dir.path(),
        &[
            "tenant-isolation",
            "--rows",
            "10000",
            "--db",
            &db_arg,
            "--json",
        ],
    );
    common::assert_success(&out);
    let advice: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let trials = advice["trials"].as_array().unwrap();
    let sender = trials
        .iter()
        .find(|t| {
            t["keep"] == true
                && t["candidate"]["kind"] == "index"
                && t["candidate"]["name"].as_str().unwrap().contains("sender")
        })
        .unwrap_or_else(|| panic!("no kept index on sender: {advice:#}"));
    let change = &sender["change"];
    let (c, lo, hi) = (
        change["change"].as_f64().unwrap(),
        change["low"].as_f64().unwrap(),
        change["high"].as_f64().unwrap(),
    );
    assert!(lo <= c && c <= hi && hi < 0.0, "{change}");
    assert!(
        sender["candidate"]["sql"]
            .as_str()
            .unwrap()
            .starts_with("CREATE INDEX"),
        "{sender}"
    );
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the user's database was written"
    );
    assert_eq!(
        side_files(&db),
        sides_before,
        "files left beside the database"
    );
}

#[test]
fn advise_with_nothing_to_fix_says_so_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = advise(dir.path(), &["point-read", "--rows", "2000"]);
    common::assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("nothing to fix"), "{stdout}");
}

#[test]
fn advise_refuses_bad_input_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let one_line_exit_2 = |out: std::process::Output, want: &str| {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    };
    // No such database.
    let missing = dir.path().join("missing.db");
    one_line_exit_2(
        advise(
            dir.path(),
            &["point-read", "--db", &missing.to_string_lossy()],
        ),
        "does not exist",
    );
    assert!(!missing.exists(), "advise created the missing database");
    // A workload without a database.
    one_line_exit_2(advise(dir.path(), &["noop"]), "has no database");
    // A database another process holds locked (rollback journal, EXCLUSIVE).
    let locked = dir.path().join("locked.db");
    let holder = rusqlite::Connection::open(&locked).unwrap();
    holder
        .execute_batch(
            "PRAGMA journal_mode = DELETE; CREATE TABLE t (x); INSERT INTO t VALUES (1);",
        )
        .unwrap();
    // Read before locking: closing any descriptor of the file would drop
    // this process's POSIX locks on it.
    let before = std::fs::read(&locked).unwrap();
    holder
        .execute_batch("BEGIN EXCLUSIVE; INSERT INTO t VALUES (2);")
        .unwrap();
    one_line_exit_2(
        advise(
            dir.path(),
            &["point-read", "--db", &locked.to_string_lossy()],
        ),
        "locked",
    );
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert!(
        std::fs::read(&locked).unwrap() == before,
        "the locked database was written"
    );
}

#[test]
fn advise_measures_the_planner_guarantee_where_sqlite_re_prepares() {
    // fts-search's MATCH ?1 is re-planned for every bound value.
    let dir = tempfile::tempdir().unwrap();
    let out = advise(dir.path(), &["fts-search", "--rows", "3000", "--json"]);
    common::assert_success(&out);
    let advice: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let qpsg = advice["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["candidate"]["sql"].as_str().unwrap().contains("QPSG"))
        .unwrap_or_else(|| panic!("no QPSG trial: {advice:#}"));
    assert_eq!(qpsg["keep"], true, "{qpsg:#}");
    assert!(qpsg["candidate"]["reason"]
        .as_str()
        .unwrap()
        .contains("re-prepared"));
}
