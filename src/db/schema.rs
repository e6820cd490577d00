//! The mail store's schema: tenants, users, mailboxes, emails, and an FTS5
//! index over subject and body.

/// Bumped whenever the tables below change; a database populated under
/// another version is rebuilt.
pub const SCHEMA_VERSION: i64 = 2;

/// Tables, created before the bulk load. Secondary indexes come after it
/// (see [`INDEXES`]): building them once over sorted data is several times
/// faster than maintaining them row by row.
pub const TABLES: &str = "
CREATE TABLE IF NOT EXISTS profkit_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tenants (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS users (
    id           INTEGER PRIMARY KEY,
    tenant_id    INTEGER NOT NULL REFERENCES tenants(id),
    address      TEXT NOT NULL,
    display_name TEXT NOT NULL,
    UNIQUE (tenant_id, address)
);
CREATE TABLE IF NOT EXISTS mailboxes (
    id      INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    name    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS emails (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
    mailbox_id  INTEGER NOT NULL REFERENCES mailboxes(id),
    sender      TEXT NOT NULL,
    recipients  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    sent_at     INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    flags       INTEGER NOT NULL DEFAULT 0,
    labels      TEXT NOT NULL DEFAULT ''
);
CREATE VIRTUAL TABLE IF NOT EXISTS emails_fts USING fts5(
    subject, body, content='emails', content_rowid='id'
);
";

/// Secondary indexes and the triggers that keep the FTS index in step.
pub const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS emails_tenant_received ON emails(tenant_id, received_at);
CREATE INDEX IF NOT EXISTS emails_tenant_sender ON emails(tenant_id, sender, received_at);
CREATE INDEX IF NOT EXISTS emails_sender_received ON emails(sender, received_at);
CREATE INDEX IF NOT EXISTS emails_received ON emails(received_at);
CREATE INDEX IF NOT EXISTS emails_mailbox ON emails(mailbox_id);
CREATE INDEX IF NOT EXISTS users_tenant ON users(tenant_id);
CREATE INDEX IF NOT EXISTS mailboxes_user ON mailboxes(user_id);
CREATE TRIGGER IF NOT EXISTS emails_fts_insert AFTER INSERT ON emails BEGIN
    INSERT INTO emails_fts(rowid, subject, body) VALUES (new.id, new.subject, new.body);
END;
CREATE TRIGGER IF NOT EXISTS emails_fts_delete AFTER DELETE ON emails BEGIN
    INSERT INTO emails_fts(emails_fts, rowid, subject, body)
        VALUES ('delete', old.id, old.subject, old.body);
END;
CREATE TRIGGER IF NOT EXISTS emails_fts_update AFTER UPDATE OF subject, body ON emails BEGIN
    INSERT INTO emails_fts(emails_fts, rowid, subject, body)
        VALUES ('delete', old.id, old.subject, old.body);
    INSERT INTO emails_fts(rowid, subject, body) VALUES (new.id, new.subject, new.body);
END;
";

/// Removes every profkit table, so a database of ours populated with other
/// parameters can be rebuilt in place.
pub const DROP_ALL: &str = "
DROP TABLE IF EXISTS emails_fts;
DROP TABLE IF EXISTS emails;
DROP TABLE IF EXISTS mailboxes;
DROP TABLE IF EXISTS users;
DROP TABLE IF EXISTS tenants;
DROP TABLE IF EXISTS profkit_meta;
";

/// The columns of an [`Email`](super::Email), in the order `Email::from_row` reads them.
pub const EMAIL_COLUMNS: &str = "id, tenant_id, mailbox_id, sender, recipients, subject, body, \
     sent_at, received_at, size, flags, labels";
