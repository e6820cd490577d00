//! The `tracing_subscriber::Layer`: follows span entries and exits per
//! poll (so a task that moves between worker threads keeps its request),
//! reads sqlx's query events, and hands both to [`super::collect`].
//!
//! A request is a root span. Its endpoint is the route it records
//! (`http.route`, `matched_path` or `route`, with `method` or
//! `http.request.method` in front when present, e.g. `GET /orders/{id}`),
//! or else the span's name. A poll is the root span entered with nothing
//! else entered on that thread; one longer than
//! [`LayerOptions::blocking_threshold`] is blocking in async.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::collect::{self, Request};
use super::defaults;
use super::slots::{Slots, SpanData};

/// sqlx's query logger writes its events to this target.
pub const SQLX_TARGET: &str = "sqlx::query";

/// Options of the layer, with documented defaults.
#[derive(Clone, Copy, Debug)]
pub struct LayerOptions {
    /// One poll longer than this is blocking in async (default
    /// [`defaults::BLOCKING_THRESHOLD`], 10 ms).
    pub blocking_threshold: Duration,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            blocking_threshold: defaults::BLOCKING_THRESHOLD,
        }
    }
}

impl LayerOptions {
    /// The layer, filtered to what it reads (every span; events of
    /// [`SQLX_TARGET`] at DEBUG and above), so it turns on sqlx's DEBUG
    /// events for itself without turning them on for the other layers.
    pub fn build<S>(self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        crate::db::trace::set_listener(on_rusqlite);
        ProfkitLayer {
            threshold: self.blocking_threshold.as_nanos() as u64,
            slots: Slots::new(),
        }
        .with_filter(ProfkitFilter)
    }
}

/// The layer with its defaults: `registry().with(profkit::service::layer())`.
/// Gathers nothing (one atomic load per callback) until a CPU profile or
/// a window is asked of the router, or a [`super::record`]ing is open.
pub fn layer<S>() -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    LayerOptions::default().build()
}

/// What the layer reads: every span, and sqlx's query events while a
/// recording is open (only a recording uses them). sqlx asks
/// `tracing::enabled!` before it builds an event (a summary, a copy of the
/// statement, the event's fields), and that answer comes from the
/// callsite's cached interest: so the interest of sqlx's events is
/// "never" while no recording is open, and [`collect::record`] rebuilds
/// the interest cache when the first recording opens and the last one
/// closes. With the events always on, sqlx built them even where the
/// app's own filter wanted none, and a CPU profile alone read each one for
/// nothing (~0.6 µs per query: BENCHMARKS.md, "fifth pass"). (A per-event
/// "no" from a per-layer filter does not make `tracing::enabled!` false:
/// the registry's answer stays "yes".)
struct ProfkitFilter;

fn wanted(meta: &Metadata<'_>) -> bool {
    meta.is_span() || (meta.target() == SQLX_TARGET && collect::recording_open())
}

impl<S> Filter<S> for ProfkitFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        wanted(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if wanted(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}

/// The layer (see the module docs).
pub struct ProfkitLayer {
    threshold: u64,
    /// Per span: its label, whether it is a request's root, and the request
    /// followed (`None` when no recording was open as the span opened: a
    /// CPU profile needs only the label). A span that finds no slot keeps
    /// its [`SpanData`] in tracing's extensions instead.
    slots: Slots,
}

thread_local! {
    /// (parent label, callsite) → the child's label: a child span costs
    /// one map lookup, no string built.
    static CHILD_LABELS: std::cell::RefCell<std::collections::HashMap<(u32, usize), u32>> =
        Default::default();
}

/// The label of a span of callsite `meta` under a span labelled `parent`.
fn child_label(parent: u32, meta: &'static Metadata<'static>) -> u32 {
    let key = (parent, meta as *const Metadata<'static> as usize);
    let cached = CHILD_LABELS.try_with(|c| c.borrow().get(&key).copied());
    if let Ok(Some(label)) = cached {
        return label;
    }
    let label = collect::child_label(parent, meta.name());
    let _ = CHILD_LABELS.try_with(|c| c.borrow_mut().insert(key, label));
    label
}

impl ProfkitLayer {
    /// What the layer keeps of live span `id` (its request when `want`).
    fn lookup<S>(&self, id: &Id, ctx: &Context<'_, S>, want: bool) -> Option<SpanData>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if let Some(d) = self.slots.get(id.into_u64(), want) {
            return Some(d);
        }
        if !self.slots.fallbacks() {
            return None;
        }
        let span = ctx.span(id)?;
        let ext = span.extensions();
        let d = ext.get::<SpanData>()?;
        Some(SpanData {
            label: d.label,
            root: d.root,
            request: if want { d.request.clone() } else { None },
        })
    }
}

/// Reads a root span's route and method into buffers kept per thread
/// (no allocation per request once they have grown).
#[derive(Default)]
struct RouteVisitor {
    route: Option<String>,
    method: Option<String>,
    /// Buffers to reuse.
    spare: Vec<String>,
}

thread_local! {
    static ROUTE_VISITOR: std::cell::RefCell<RouteVisitor> = Default::default();
}

impl RouteVisitor {
    fn slot(&mut self, field: &Field) -> Option<&mut String> {
        let slot = match field.name() {
            "http.route" | "matched_path" | "route" => &mut self.route,
            "method" | "http.request.method" | "http.method" => &mut self.method,
            _ => return None,
        };
        let mut buf = slot.take().or_else(|| self.spare.pop()).unwrap_or_default();
        buf.clear();
        Some(slot.insert(buf))
    }

    /// The endpoint into `out`: `METHOD route`, the route, or `name`.
    fn endpoint(&mut self, name: &str, out: &mut String) {
        out.clear();
        match (self.method.take(), self.route.take()) {
            (Some(m), Some(r)) => {
                out.push_str(&m);
                out.push(' ');
                out.push_str(&r);
                self.spare.extend([m, r]);
            }
            (m, Some(r)) => {
                out.push_str(&r);
                self.spare.extend(m.into_iter().chain([r]));
            }
            (m, None) => {
                out.push_str(name);
                self.spare.extend(m);
            }
        }
    }
}

impl Visit for RouteVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(buf) = self.slot(field) {
            buf.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(buf) = self.slot(field) {
            use std::fmt::Write as _;
            let _ = write!(buf, "{value:?}");
            // `?method` and `?matched_path` record Debug forms, quoted or not.
            if buf.len() >= 2 && buf.starts_with('"') && buf.ends_with('"') {
                buf.pop();
                buf.remove(0);
            }
        }
    }
}

impl<S> Layer<S> for ProfkitLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !collect::active() {
            return;
        }
        let meta = attrs.metadata();
        let name = meta.name();
        let parent = if attrs.is_root() {
            None
        } else if attrs.is_contextual() {
            ctx.current_span().id().cloned()
        } else {
            attrs.parent().cloned()
        };
        let data = match parent {
            Some(parent) => {
                // A parent from before anyone read: not followed.
                let Some(p) = self.lookup(&parent, &ctx, true) else {
                    return;
                };
                SpanData {
                    label: child_label(p.label, meta),
                    root: false,
                    request: p.request,
                }
            }
            None => {
                let want = collect::recording_open();
                let found = ROUTE_VISITOR.try_with(|v| {
                    let mut v = v.borrow_mut();
                    attrs.record(&mut *v);
                    let mut endpoint = v.spare.pop().unwrap_or_default();
                    v.endpoint(name, &mut endpoint);
                    let found = collect::root_label(&endpoint, name, want);
                    v.spare.push(endpoint);
                    found
                });
                let (label, endpoint) =
                    found.unwrap_or_else(|_| collect::root_label(name, name, want));
                SpanData {
                    label,
                    root: true,
                    request: endpoint.map(|e| Arc::new(Request::new(e))),
                }
            }
        };
        if let Err(data) = self.slots.insert(id.into_u64(), data) {
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(data);
                self.slots.count_fallback(true);
            }
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !collect::active() {
            return;
        }
        if let Some(d) = self.lookup(id, &ctx, true) {
            collect::enter(id.into_u64(), d.label, d.request, d.root);
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        // Also when no longer active: the thread's stack is kept straight.
        collect::exit(id.into_u64(), self.threshold);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        // Also when no longer active: the slot is freed.
        let data = match self.slots.remove(id.into_u64()) {
            Some(d) => d,
            None if self.slots.fallbacks() => {
                let Some(span) = ctx.span(&id) else { return };
                let Some(d) = span.extensions_mut().remove::<SpanData>() else {
                    return;
                };
                self.slots.count_fallback(false);
                d
            }
            None => return,
        };
        if let (true, Some(r)) = (data.root && collect::active(), &data.request) {
            collect::request_done(r);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !collect::recording_open() || event.metadata().target() != SQLX_TARGET {
            return;
        }
        let mut v = SqlxVisitor::default();
        event.record(&mut v);
        let Some((text, secs)) = v.statement() else {
            collect::skipped_event();
            return;
        };
        let rows = v.rows_returned.unwrap_or(0) + v.rows_affected.unwrap_or(0);
        let request = event
            .parent()
            .and_then(|p| self.lookup(p, &ctx, true))
            .and_then(|d| d.request)
            .or_else(collect::current_request);
        collect::statement(
            request.as_deref(),
            &text,
            (secs.max(0.0) * 1e9) as u64,
            rows,
        );
    }
}

/// The fields of one sqlx query event.
#[derive(Default, Debug)]
pub(super) struct SqlxVisitor {
    statement: Option<String>,
    summary: Option<String>,
    elapsed_secs: Option<f64>,
    rows_returned: Option<u64>,
    rows_affected: Option<u64>,
}

impl SqlxVisitor {
    /// The statement's text and seconds, or `None` when a field is
    /// missing: `db.statement` (empty when the statement is four words or
    /// fewer) or else `summary`, and `elapsed_secs`.
    pub(super) fn statement(&self) -> Option<(String, f64)> {
        let long = self
            .statement
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let text = match long {
            Some(s) => s.to_string(),
            // sqlx's summary of a longer statement ends with "…": its first
            // words only, not the statement.
            None => self
                .summary
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty() && !s.ends_with('…'))?
                .to_string(),
        };
        Some((text, self.elapsed_secs?))
    }
}

impl Visit for SqlxVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "db.statement" => self.statement = Some(value.to_string()),
            "summary" => self.summary = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "rows_returned" => self.rows_returned = Some(value),
            "rows_affected" => self.rows_affected = Some(value),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Strings recorded with `?`/`%` arrive here.
        match field.name() {
            "db.statement" | "summary" => {
                let s = format!("{value:?}");
                self.record_str(field, s.trim_matches('"'));
            }
            _ => {}
        }
    }
}

/// profkit's rusqlite hook: a statement on this thread (kept only by
/// recordings).
fn on_rusqlite(sql: &str, nanos: u64, rows: u64) {
    if collect::recording_open() {
        collect::statement(collect::current_request().as_deref(), sql, nanos, rows);
    }
}
