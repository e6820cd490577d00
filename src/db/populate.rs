//! Filling a database with the deterministic dataset (or reusing one
//! that already holds it).

use super::*;

impl DatabaseManager {
    /// The (rows, seed) this database was populated with, if any.
    pub fn populated(&self) -> Result<Option<(u64, u64)>> {
        let conn = self.conn()?;
        let get = |key: &str| -> rusqlite::Result<Option<String>> {
            conn.query_row(
                "SELECT value FROM profkit_meta WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
        };
        let (Some(version), Some(rows), Some(seed)) =
            (get("schema_version")?, get("rows")?, get("seed")?)
        else {
            return Ok(None);
        };
        if version.parse::<i64>().ok() != Some(schema::SCHEMA_VERSION) {
            return Ok(None);
        }
        Ok(rows.parse().ok().zip(seed.parse().ok()))
    }

    /// Fills the store with `rows` deterministic emails generated from
    /// `seed`. A database that already holds exactly this dataset is reused
    /// as it is; one holding another profkit dataset is rebuilt.
    pub fn populate(&self, rows: u64, seed: u64) -> Result<PopulateStats> {
        if self.populated()? == Some((rows, seed)) && self.count_emails()? == rows {
            return Ok(PopulateStats {
                rows,
                reused: true,
                elapsed: Default::default(),
            });
        }
        let start = Instant::now();
        let shape = Shape::for_rows(rows);
        {
            let conn = self.conn()?;
            conn.execute_batch(schema::DROP_ALL)?;
            conn.execute_batch(schema::TABLES)?;
            conn.execute_batch("PRAGMA synchronous = OFF")?;
        }
        self.write(|tx| {
            let mut tenant = tx.prepare_cached("INSERT INTO tenants (id, name) VALUES (?1, ?2)")?;
            let mut user = tx.prepare_cached(
                "INSERT INTO users (id, tenant_id, address, display_name) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut mailbox =
                tx.prepare_cached("INSERT INTO mailboxes (id, user_id, name) VALUES (?1, ?2, ?3)")?;
            for t in 1..=shape.tenants as i64 {
                tenant.execute(params![t, format!("tenant{t}")])?;
                for n in 0..shape.users_per_tenant {
                    let id = shape.user_id(t, n);
                    let address = shape.user_address(t, n);
                    user.execute(params![id, t, address, format!("User {n} of tenant {t}")])?;
                    mailbox.execute(params![2 * (id - 1) + 1, id, "INBOX"])?;
                    mailbox.execute(params![2 * (id - 1) + 2, id, "Archive"])?;
                }
            }
            Ok(())
        })?;
        let mut generator = Generator::new(shape, seed);
        // Small enough that Ctrl-C stops populating within a fraction of a
        // second; the dataset's meta rows are written last, so a stopped
        // (or killed) populate is found incomplete and redone next time.
        const BATCH: u64 = 2_000;
        let stopped = || -> Result<()> {
            match stop_requested() {
                true => Err(DbError::Interrupted {
                    path: self.config.path.clone(),
                }),
                false => Ok(()),
            }
        };
        let mut next = 1u64;
        while next <= rows {
            stopped()?;
            let end = (next + BATCH).min(rows + 1);
            self.write(|tx| {
                let mut stmt = tx.prepare_cached(INSERT_EMAIL)?;
                for id in next..end {
                    let e = generator.email(id as i64);
                    super::queries::insert_with(&mut stmt, &e)?;
                }
                Ok(())
            })?;
            next = end;
        }
        stopped()?;
        {
            let conn = self.conn()?;
            conn.execute_batch("INSERT INTO emails_fts(emails_fts) VALUES ('rebuild')")?;
            conn.execute_batch(schema::INDEXES)?;
            conn.execute_batch("ANALYZE")?;
            conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        }
        self.write(|tx| {
            let mut meta = tx.prepare_cached(
                "INSERT OR REPLACE INTO profkit_meta (key, value) VALUES (?1, ?2)",
            )?;
            meta.execute(params![
                "schema_version",
                schema::SCHEMA_VERSION.to_string()
            ])?;
            meta.execute(params!["rows", rows.to_string()])?;
            meta.execute(params!["seed", seed.to_string()])?;
            Ok(())
        })?;
        *self.shape.write().unwrap_or_else(|e| e.into_inner()) = shape;
        self.refresh_max_id()?;
        Ok(PopulateStats {
            rows,
            reused: false,
            elapsed: start.elapsed().into(),
        })
    }
}
