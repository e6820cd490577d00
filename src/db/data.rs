//! A deterministic generator of a realistic mail store: several tenants of
//! different sizes, a skewed sender distribution (a few senders send most of
//! the mail), subjects and bodies of varied length, and rare reference codes
//! that full-text searches look for.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::NewEmail;

/// Common words that subjects and bodies are drawn from.
const WORDS: &[&str] = &[
    "meeting",
    "report",
    "invoice",
    "project",
    "update",
    "review",
    "schedule",
    "budget",
    "release",
    "deadline",
    "customer",
    "contract",
    "proposal",
    "summary",
    "quarterly",
    "team",
    "lunch",
    "travel",
    "expense",
    "approval",
    "question",
    "answer",
    "urgent",
    "follow",
    "up",
    "notes",
    "agenda",
    "call",
    "draft",
    "final",
    "version",
    "feedback",
    "design",
    "server",
    "database",
    "outage",
    "incident",
    "postmortem",
    "launch",
    "plan",
    "roadmap",
    "hiring",
    "interview",
    "offer",
    "welcome",
    "onboarding",
    "training",
    "policy",
    "security",
    "password",
    "reset",
    "account",
    "billing",
    "payment",
    "receipt",
    "order",
    "shipping",
    "delivery",
    "tracking",
    "support",
    "ticket",
    "request",
    "issue",
    "fix",
    "deploy",
    "staging",
    "production",
    "metrics",
    "dashboard",
    "alert",
    "weekly",
    "monthly",
    "the",
    "a",
    "and",
    "to",
    "of",
    "in",
    "for",
    "on",
    "with",
    "please",
    "thanks",
    "regards",
    "attached",
    "see",
    "below",
    "let",
    "me",
    "know",
    "if",
    "you",
    "have",
    "any",
    "we",
    "will",
    "can",
    "need",
    "by",
    "friday",
    "monday",
    "today",
    "tomorrow",
    "next",
    "week",
    "office",
    "remote",
    "holiday",
    "party",
    "birthday",
    "conference",
    "slides",
    "demo",
];

const FIRST_NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yvonne",
];

/// Labels an email may carry.
const LABELS: &[&str] = &[
    "work",
    "personal",
    "finance",
    "travel",
    "later",
    "important",
];

/// Seconds since the epoch at which the generated mail history starts (2025-01-01).
const EPOCH_START: i64 = 1_735_689_600;

/// How many distinct reference codes the generator uses; each appears in
/// about `rows / RARE_CODES / 2` emails, so a search for one is selective.
pub const RARE_CODES: u64 = 1000;

/// The reference code with number `n`, as it appears in bodies (`ref00042`).
pub fn rare_code(n: u64) -> String {
    format!("ref{:05}", n % RARE_CODES)
}

/// SplitMix64: a fast, well-mixed hash of a 64-bit value.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform value in [0, 1) derived from `x`.
fn unit(x: u64) -> f64 {
    (mix(x) >> 11) as f64 / (1u64 << 53) as f64
}

/// The shape of a generated dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Number of emails.
    pub rows: u64,
    /// Number of tenants.
    pub tenants: u64,
    /// Users per tenant; each user has an INBOX and an Archive mailbox.
    pub users_per_tenant: u64,
    /// Distinct external senders.
    pub senders: u64,
}

impl Shape {
    /// The shape used for `rows` emails: 8 tenants, users and senders growing
    /// with the data.
    pub fn for_rows(rows: u64) -> Shape {
        Shape {
            rows,
            tenants: 8,
            users_per_tenant: (rows / 2000).clamp(4, 500),
            senders: (rows / 50).clamp(20, 20_000),
        }
    }

    /// The tenant an email id belongs to. Skewed: tenant 1 holds about a
    /// third of the mail, the last one a few percent. Deterministic, so
    /// workloads can scope an operation to the right tenant without a query.
    pub fn tenant_of(&self, email_id: i64) -> i64 {
        let u = unit(email_id as u64 ^ 0x007E_4A17);
        1 + (u * u * self.tenants as f64) as i64
    }

    /// A sender address drawn from a power-law distribution (`u³`): the
    /// first few senders send most of the mail.
    pub fn sender_for(&self, u: f64) -> String {
        let idx = ((u * u * u) * self.senders as f64) as u64;
        let name = FIRST_NAMES[(idx % FIRST_NAMES.len() as u64) as usize];
        format!("{name}.{idx}@sender{}.example", idx % 97)
    }

    /// The address of user `n` (0-based within the tenant) of `tenant`.
    pub fn user_address(&self, tenant: i64, n: u64) -> String {
        let name = FIRST_NAMES[(n % FIRST_NAMES.len() as u64) as usize];
        format!("{name}.{n}@tenant{tenant}.example")
    }

    /// The id of user `n` of `tenant` (users are numbered tenant by tenant).
    pub fn user_id(&self, tenant: i64, n: u64) -> i64 {
        (tenant - 1) * self.users_per_tenant as i64 + n as i64 + 1
    }
}

/// Generates emails one by one, deterministically from a seed.
pub struct Generator {
    shape: Shape,
    rng: ChaCha8Rng,
}

impl Generator {
    /// A generator for `shape`, seeded with `seed`.
    pub fn new(shape: Shape, seed: u64) -> Generator {
        Generator {
            shape,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The email with id `id` (ids are 1-based and dense after populate).
    pub fn email(&mut self, id: i64) -> NewEmail {
        random_email(&self.shape, &mut self.rng, id)
    }
}

fn words(rng: &mut impl Rng, n: usize, out: &mut String) {
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
}

/// A random email for the slot `id` of a dataset of `shape`, drawn from `rng`.
pub fn random_email(shape: &Shape, rng: &mut impl Rng, id: i64) -> NewEmail {
    let tenant_id = shape.tenant_of(id);
    let user = rng.random_range(0..shape.users_per_tenant);
    let user_id = shape.user_id(tenant_id, user);
    let archived = rng.random_bool(0.2);
    let mailbox_id = 2 * (user_id - 1) + 1 + i64::from(archived);
    let sender = shape.sender_for(rng.random());

    let mut subject = String::with_capacity(64);
    let subject_words = rng.random_range(3..10);
    words(rng, subject_words, &mut subject);

    // Body length is long-tailed: most mails are short, a few are long.
    let u: f64 = rng.random();
    let body_words = 10 + (u * u * u * 150.0) as usize;
    let mut body = String::with_capacity(body_words * 7 + 16);
    words(rng, body_words, &mut body);
    if rng.random_bool(0.5) {
        body.push(' ');
        body.push_str(&rare_code(rng.random_range(0..RARE_CODES)));
    }

    let sent_at = EPOCH_START + id * 300 + rng.random_range(0..300);
    let received_at = sent_at + rng.random_range(0..120);
    let flags = rng.random_range(0..4);
    let labels = if rng.random_bool(0.3) {
        LABELS[rng.random_range(0..LABELS.len())].to_string()
    } else {
        String::new()
    };
    NewEmail {
        tenant_id,
        mailbox_id,
        sender,
        recipients: shape.user_address(tenant_id, user),
        subject,
        body,
        sent_at,
        received_at,
        flags,
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data() {
        let shape = Shape::for_rows(1000);
        let mut a = Generator::new(shape, 7);
        let mut b = Generator::new(shape, 7);
        for id in 1..50 {
            assert_eq!(a.email(id), b.email(id));
        }
        let mut c = Generator::new(shape, 8);
        assert_ne!(Generator::new(shape, 7).email(1), c.email(1));
    }

    #[test]
    fn senders_are_skewed_and_tenants_vary() {
        let shape = Shape::for_rows(100_000);
        let mut g = Generator::new(shape, 1);
        let mut counts = std::collections::HashMap::new();
        let mut tenants = std::collections::HashSet::new();
        for id in 1..5000 {
            let e = g.email(id);
            *counts.entry(e.sender).or_insert(0u32) += 1;
            tenants.insert(e.tenant_id);
        }
        let top = counts.values().max().copied().unwrap_or(0);
        // With a uniform distribution over 2000 senders the top one would
        // send a handful of the 5000 mails; skew makes it far more.
        assert!(top > 100, "top sender sent only {top}");
        assert_eq!(tenants.len(), 8);
    }
}
