//! Query plans: `EXPLAIN QUERY PLAN` of the statements a run executed,
//! captured on a connection of its own (read-only, no trace hook, so it
//! adds nothing to the counts). The statements themselves are tallied by
//! the trace hook in [`crate::db::trace`].

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

/// One step of a query plan (a row of EXPLAIN QUERY PLAN).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    /// Step id.
    pub id: i64,
    /// Parent step id (0 for top level).
    pub parent: i64,
    /// SQLite's description, e.g. `SCAN emails`.
    pub detail: String,
}

/// The query plan of `sql` on `conn`. Empty for statements without a plan
/// (BEGIN, COMMIT, PRAGMA …).
pub fn explain(conn: &Connection, sql: &str) -> Vec<PlanStep> {
    let Ok(mut stmt) = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")) else {
        return Vec::new();
    };
    // Parameters are bound as NULL: the plan does not depend on their values.
    let nulls = std::iter::repeat_n(rusqlite::types::Null, stmt.parameter_count());
    let rows = stmt.query_map(rusqlite::params_from_iter(nulls), |r| {
        Ok(PlanStep {
            id: r.get(0)?,
            parent: r.get(1)?,
            detail: r.get(3)?,
        })
    });
    match rows {
        Ok(rows) => rows.filter_map(Result::ok).collect(),
        Err(_) => Vec::new(),
    }
}

/// Explains statements against the database files a run used.
pub struct Planner {
    conns: Vec<Connection>,
}

impl Planner {
    /// A read-only connection to `db_path`; a database that cannot be
    /// opened gives empty plans.
    pub fn open(db_path: &Path) -> Planner {
        Planner::open_all([db_path])
    }

    /// Read-only connections to each of `paths` that opens (the run's
    /// database, then the files of connections a workload traced itself);
    /// a statement is planned by the first one that knows its tables.
    pub fn open_all<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Planner {
        let conns = paths
            .into_iter()
            .filter_map(|p| {
                crate::db::sqlite_alloc::open_with_flags(
                    p,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .ok()
            })
            .collect();
        Planner { conns }
    }

    /// The plan of `sql` (empty when there is none or no database).
    pub fn plan(&self, sql: &str) -> Vec<PlanStep> {
        self.conns
            .iter()
            .map(|c| explain(c, sql))
            .find(|steps| !steps.is_empty())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_name_scans_and_index_searches() {
        let conn = crate::db::sqlite_alloc::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE emails (id INTEGER PRIMARY KEY, sender TEXT, subject TEXT); CREATE INDEX s ON emails(sender);")
            .unwrap();
        let scan = explain(&conn, "SELECT id FROM emails WHERE subject LIKE ?1");
        assert!(scan.iter().any(|s| s.detail == "SCAN emails"), "{scan:?}");
        let search = explain(&conn, "SELECT subject FROM emails WHERE sender = ?1");
        assert!(
            search
                .iter()
                .any(|s| s.detail.starts_with("SEARCH emails USING INDEX")),
            "{search:?}"
        );
        let random = explain(&conn, "SELECT * FROM emails ORDER BY RANDOM() LIMIT 10");
        assert!(random
            .iter()
            .any(|s| s.detail == "USE TEMP B-TREE FOR ORDER BY"));
        assert!(explain(&conn, "BEGIN IMMEDIATE").is_empty());
        assert!(Planner::open(Path::new("/nonexistent/x.db"))
            .plan("SELECT 1")
            .is_empty());
    }
}
