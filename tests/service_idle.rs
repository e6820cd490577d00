//! The layer idle: with nothing reading, sqlx's query events are off, so
//! sqlx builds none of them (it asks `tracing::enabled!` first); a
//! recording turns them on, and closing it turns them off again. Its own
//! test binary: recordings are process-wide, and another test's would
//! turn the events on.

#![cfg(feature = "service")]

use profkit::service;
use tracing::Level;
use tracing_subscriber::layer::SubscriberExt as _;

fn sqlx_events_on() -> bool {
    tracing::enabled!(target: "sqlx::query", Level::DEBUG)
}

#[test]
fn sqlx_events_are_built_only_while_a_recording_is_open() {
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(service::layer()))
        .unwrap();
    assert!(!sqlx_events_on(), "idle layer asked sqlx for its events");
    let (on, _) = service::profile_labelled(sqlx_events_on).unwrap();
    assert!(!on, "a CPU profile alone does not use sqlx's events");
    let rec = service::record();
    assert!(sqlx_events_on(), "a recording needs sqlx's events");
    // Other targets stay off.
    assert!(!tracing::enabled!(target: "app", Level::DEBUG));
    drop(rec);
    assert!(
        !sqlx_events_on(),
        "events still on after the recording closed"
    );
}
