//! The store's operations: reads, searches, reports and writes.

use super::*;

impl DatabaseManager {
    /// Number of emails stored.
    pub fn count_emails(&self) -> Result<u64> {
        let n: i64 = self
            .conn()?
            .query_row("SELECT count(*) FROM emails", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Inserts one email; returns its id.
    pub fn insert_email(&self, email: &NewEmail) -> Result<i64> {
        let id = self.write(|tx| {
            insert_with(&mut tx.prepare_cached(INSERT_EMAIL)?, email)?;
            Ok(tx.last_insert_rowid())
        })?;
        self.max_id.fetch_max(id, Ordering::Relaxed);
        Ok(id)
    }

    /// Inserts many emails in one transaction.
    pub fn insert_emails(&self, emails: &[NewEmail]) -> Result<()> {
        let last = self.write(|tx| {
            let mut stmt = tx.prepare_cached(INSERT_EMAIL)?;
            for e in emails {
                insert_with(&mut stmt, e)?;
            }
            Ok(tx.last_insert_rowid())
        })?;
        self.max_id.fetch_max(last, Ordering::Relaxed);
        Ok(())
    }

    /// The email with `id`, if it exists within `scope`.
    pub fn get_email(&self, scope: Scope, id: i64) -> Result<Option<Email>> {
        let conn = self.conn()?;
        let email = match scope {
            Scope::All => conn
                .prepare_cached(concat!("SELECT ", cols!(), " FROM emails WHERE id = ?1"))?
                .query_row([id], Email::from_row),
            Scope::Tenant(t) => conn
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM emails WHERE id = ?1 AND tenant_id = ?2"
                ))?
                .query_row([id, t], Email::from_row),
        };
        Ok(email.optional()?)
    }

    /// `k` emails picked at random, by `k` random row-id lookups (about
    /// 0.4 ms for k = 100 at 100k rows). Ids of deleted rows are skipped
    /// and redrawn.
    pub fn query_random_emails(&self, rng: &mut impl Rng, k: usize) -> Result<Vec<Email>> {
        let max = self.max_id();
        let mut out = Vec::with_capacity(k);
        if max == 0 {
            return Ok(out);
        }
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare_cached(concat!("SELECT ", cols!(), " FROM emails WHERE id = ?1"))?;
        let mut attempts = 0;
        while out.len() < k && attempts < 4 * k + 16 {
            attempts += 1;
            let id = rng.random_range(1..=max);
            if let Some(e) = stmt.query_row([id], Email::from_row).optional()? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The naive form of [`query_random_emails`](Self::query_random_emails):
    /// `ORDER BY RANDOM() LIMIT k`, which reads and sorts every row (about
    /// 16 ms at 100k rows). Kept as a slow twin.
    pub fn query_random_emails_naive(&self, k: usize) -> Result<Vec<Email>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT ",
            cols!(),
            " FROM emails ORDER BY RANDOM() LIMIT ?1"
        ))?;
        let rows = stmt.query_map([k as i64], Email::from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest `limit` emails from `sender` (uses an index).
    pub fn search_by_sender(&self, scope: Scope, sender: &str, limit: usize) -> Result<Vec<Email>> {
        let conn = self.conn()?;
        let rows = match scope {
            Scope::All => conn
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM emails WHERE sender = ?1 ORDER BY received_at DESC LIMIT ?2"
                ))?
                .query_map(params![sender, limit as i64], Email::from_row)?
                .collect::<rusqlite::Result<Vec<_>>>(),
            Scope::Tenant(t) => conn
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM emails WHERE tenant_id = ?3 AND sender = ?1 ORDER BY received_at DESC LIMIT ?2"
                ))?
                .query_map(params![sender, limit as i64, t], Email::from_row)?
                .collect(),
        };
        Ok(rows?)
    }

    /// Ids of emails whose subject or body contains the word `term`, by the
    /// FTS5 index.
    pub fn search_fts(&self, scope: Scope, term: &str, limit: usize) -> Result<Vec<i64>> {
        // Quote the term so FTS5 query syntax in user input is taken literally.
        let query = format!("\"{}\"", term.replace('"', "\"\""));
        let conn = self.conn()?;
        let ids = match scope {
            Scope::All => conn
                .prepare_cached(
                    "SELECT rowid FROM emails_fts WHERE emails_fts MATCH ?1 ORDER BY rowid LIMIT ?2",
                )?
                .query_map(params![query, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>(),
            Scope::Tenant(t) => conn
                .prepare_cached(
                    "SELECT e.id FROM emails_fts f JOIN emails e ON e.id = f.rowid \
                     WHERE emails_fts MATCH ?1 AND e.tenant_id = ?3 ORDER BY e.id LIMIT ?2",
                )?
                .query_map(params![query, limit as i64, t], |r| r.get(0))?
                .collect(),
        };
        Ok(ids?)
    }

    /// The same search as [`search_fts`](Self::search_fts) done naively:
    /// `LIKE '%term%'` on subject and body, a full scan of the table.
    pub fn search_like(&self, scope: Scope, term: &str, limit: usize) -> Result<Vec<i64>> {
        let pattern = format!(
            "%{}%",
            term.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let conn = self.conn()?;
        let ids = match scope {
            Scope::All => conn
                .prepare_cached(
                    "SELECT id FROM emails WHERE subject LIKE ?1 ESCAPE '\\' OR body LIKE ?1 ESCAPE '\\' \
                     ORDER BY id LIMIT ?2",
                )?
                .query_map(params![pattern, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>(),
            Scope::Tenant(t) => conn
                .prepare_cached(
                    "SELECT id FROM emails WHERE tenant_id = ?3 AND (subject LIKE ?1 ESCAPE '\\' \
                     OR body LIKE ?1 ESCAPE '\\') ORDER BY id LIMIT ?2",
                )?
                .query_map(params![pattern, limit as i64, t], |r| r.get(0))?
                .collect(),
        };
        Ok(ids?)
    }

    /// Page `page` (0-based) of the newest emails, `page_size` per page.
    pub fn list_page(&self, scope: Scope, page: u64, page_size: u64) -> Result<Vec<Email>> {
        let conn = self.conn()?;
        let offset = (page * page_size) as i64;
        let rows = match scope {
            Scope::All => conn
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM emails ORDER BY received_at DESC LIMIT ?1 OFFSET ?2"
                ))?
                .query_map(params![page_size as i64, offset], Email::from_row)?
                .collect::<rusqlite::Result<Vec<_>>>(),
            Scope::Tenant(t) => conn
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM emails WHERE tenant_id = ?3 ORDER BY received_at DESC LIMIT ?1 OFFSET ?2"
                ))?
                .query_map(params![page_size as i64, offset, t], Email::from_row)?
                .collect(),
        };
        Ok(rows?)
    }

    /// The `top` senders by number of emails, with their byte totals
    /// (a GROUP BY over the scope).
    pub fn sender_report(&self, scope: Scope, top: usize) -> Result<Vec<SenderStats>> {
        let conn = self.conn()?;
        let map = |r: &Row<'_>| {
            Ok(SenderStats {
                sender: r.get(0)?,
                emails: r.get(1)?,
                bytes: r.get(2)?,
            })
        };
        let rows = match scope {
            Scope::All => conn
                .prepare_cached(
                    "SELECT sender, count(*), sum(size) FROM emails GROUP BY sender \
                     ORDER BY 2 DESC, 1 LIMIT ?1",
                )?
                .query_map([top as i64], map)?
                .collect::<rusqlite::Result<Vec<_>>>(),
            Scope::Tenant(t) => conn
                .prepare_cached(
                    "SELECT sender, count(*), sum(size) FROM emails WHERE tenant_id = ?2 \
                     GROUP BY sender ORDER BY 2 DESC, 1 LIMIT ?1",
                )?
                .query_map([top as i64, t], map)?
                .collect(),
        };
        Ok(rows?)
    }

    /// Sets the flags of an email; false when no such email is in scope.
    pub fn update_flags(&self, scope: Scope, id: i64, flags: i64) -> Result<bool> {
        let n = self.write(|tx| match scope {
            Scope::All => tx
                .prepare_cached("UPDATE emails SET flags = ?2 WHERE id = ?1")?
                .execute([id, flags]),
            Scope::Tenant(t) => tx
                .prepare_cached("UPDATE emails SET flags = ?2 WHERE id = ?1 AND tenant_id = ?3")?
                .execute([id, flags, t]),
        })?;
        Ok(n > 0)
    }

    /// Deletes an email; false when no such email is in scope.
    pub fn delete_email(&self, scope: Scope, id: i64) -> Result<bool> {
        let n = self.write(|tx| match scope {
            Scope::All => tx
                .prepare_cached("DELETE FROM emails WHERE id = ?1")?
                .execute([id]),
            Scope::Tenant(t) => tx
                .prepare_cached("DELETE FROM emails WHERE id = ?1 AND tenant_id = ?2")?
                .execute([id, t]),
        })?;
        Ok(n > 0)
    }

    /// The newest `n` emails of a tenant, loaded the N+1 way: one query for
    /// the ids, then one query per email.
    pub fn recent_emails_n_plus_one(&self, tenant: i64, n: usize) -> Result<Vec<Email>> {
        let ids = self.recent_ids(tenant, n)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = self.get_email(Scope::Tenant(tenant), id)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The same as [`recent_emails_n_plus_one`](Self::recent_emails_n_plus_one),
    /// batched: the ids, then one query for all of them, the ids bound as one
    /// JSON array read by `json_each`. The statement's text does not depend on
    /// how many ids there are, so it is prepared once and cached, and SQLite
    /// plans it once:
    /// - the tenant check is `+emails.tenant_id = ?1`: the unary `+` keeps the
    ///   planner from weighing the tenant's indexes by the bound tenant (with
    ///   `ANALYZE`'s STAT4 samples it would, and SQLite then re-prepares the
    ///   statement whenever a tenant is bound: every run). The rows are found
    ///   by primary key; the check only filters them.
    /// - the rows come in the ids' order, newest first, as the N+1 form returns
    ///   them: `ORDER BY ids.rowid` is the order `json_each` walks the array
    ///   in, and it tells the planner so: no sort.
    pub fn recent_emails_batched(&self, tenant: i64, n: usize) -> Result<Vec<Email>> {
        let ids = self.recent_ids(tenant, n)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(BATCHED)?;
        let ids = format!(
            "[{}]",
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        );
        let rows = stmt.query_map(params![tenant, ids], Email::from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn recent_ids(&self, tenant: i64, n: usize) -> Result<Vec<i64>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM emails WHERE tenant_id = ?1 ORDER BY received_at DESC LIMIT ?2",
        )?;
        let ids = stmt.query_map([tenant, n as i64], |r| r.get(0))?;
        Ok(ids.collect::<rusqlite::Result<_>>()?)
    }
}

/// The batched fetch of [`DatabaseManager::recent_emails_batched`].
const BATCHED: &str = "SELECT emails.id, emails.tenant_id, emails.mailbox_id, emails.sender, \
     emails.recipients, emails.subject, emails.body, emails.sent_at, emails.received_at, \
     emails.size, emails.flags, emails.labels \
     FROM json_each(?2) AS ids JOIN emails ON emails.id = ids.value \
     WHERE +emails.tenant_id = ?1 ORDER BY ids.rowid";

pub(super) fn insert_with(
    stmt: &mut rusqlite::CachedStatement<'_>,
    e: &NewEmail,
) -> rusqlite::Result<usize> {
    let size = (e.subject.len() + e.body.len()) as i64;
    stmt.execute(params![
        e.tenant_id,
        e.mailbox_id,
        e.sender,
        e.recipients,
        e.subject,
        e.body,
        e.sent_at,
        e.received_at,
        size,
        e.flags,
        e.labels
    ])
}
