//! Structured logs (DESIGN §9): every event of the node goes through
//! `tracing` and comes out as one JSON object per line on stderr.
//!
//! A typed event ([`pc_node::telemetry::Event`], see [`emit`]) is written
//! as its own JSON object — `"type"` first, its fields in order — with
//! `"level"` and `"ts_ms"` (Unix milliseconds) added at the end; the seed's
//! `{"type":"genesis_loaded","k":..,"commitment":".."}` is written exactly
//! as the seed gives it. Any other `tracing` event is written as
//! `{"type":"log","level":..,"target":..,"message":..,<fields>}`.
//!
//! The level filter is `--log-level` (a `tracing` directive: `warn`,
//! `info`, `pc_engine=debug`, …), else `RUST_LOG`, else `info`.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use pc_node::telemetry::{Event, Severity};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::EngineError;

/// The field a typed event travels in (its JSON line).
const EVENT_FIELD: &str = "pc_event";
/// The field saying the event's line is the seed's, written as it is.
const SEED_FIELD: &str = "pc_seed";

/// Installs the JSON-lines subscriber for this process (once; later calls
/// keep the first). `level` is a `tracing` filter directive.
pub fn init(level: Option<&str>) -> Result<(), EngineError> {
    let filter = match level {
        Some(directive) => EnvFilter::try_new(directive).map_err(|e| {
            EngineError::Config(format!(
                "--log-level {directive:?}: not a level or filter ({e})"
            ))
        })?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let _ = tracing_subscriber::registry()
        .with(JsonLines.with_filter(filter))
        .try_init();
    Ok(())
}

/// Logs a typed event of the node at its severity.
pub fn emit(event: &Event) {
    let line = event.to_line();
    let line = line.as_str();
    let seed = event.seed_shaped();
    match event.severity() {
        Severity::Error => tracing::error!(pc_event = line, pc_seed = seed),
        Severity::Warn => tracing::warn!(pc_event = line, pc_seed = seed),
        Severity::Info => tracing::info!(pc_event = line, pc_seed = seed),
    }
}

/// Logs the node's last error: through `tracing` when its filter lets
/// errors through, else (no subscriber yet, `--log-level off`) as the same
/// JSON line written directly, so that it is never lost.
pub fn emit_fatal(event: &Event) {
    if tracing::enabled!(tracing::Level::ERROR) {
        emit(event);
        return;
    }
    let Ok(mut object) = serde_json::from_str::<Map<String, Value>>(&event.to_line()) else {
        return;
    };
    object.insert("level".into(), Value::from("error"));
    object.insert("ts_ms".into(), Value::from(unix_ms()));
    if let Ok(line) = serde_json::to_string(&object) {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// The layer writing one JSON object per event on stderr.
struct JsonLines;

#[derive(Default)]
struct Fields {
    event: Option<String>,
    seed: bool,
    message: Option<String>,
    other: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            EVENT_FIELD => self.event = Some(value.to_string()),
            "message" => self.message = Some(value.to_string()),
            name => {
                self.other.insert(name.to_string(), Value::from(value));
            }
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.other
            .insert(field.name().to_string(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.other
            .insert(field.name().to_string(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == SEED_FIELD {
            self.seed = value;
        } else {
            self.other
                .insert(field.name().to_string(), Value::from(value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for JsonLines {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let level = metadata.level().as_str().to_ascii_lowercase();
        let typed = fields
            .event
            .as_deref()
            .and_then(|line| serde_json::from_str::<Map<String, Value>>(line).ok());
        let object = match typed {
            Some(object) if fields.seed => object,
            Some(mut object) => {
                object.insert("level".into(), Value::from(level));
                object.insert("ts_ms".into(), Value::from(unix_ms()));
                object
            }
            None => {
                let mut object = Map::new();
                object.insert("type".into(), Value::from("log"));
                object.insert("level".into(), Value::from(level));
                object.insert("ts_ms".into(), Value::from(unix_ms()));
                object.insert("target".into(), Value::from(metadata.target()));
                object.insert(
                    "message".into(),
                    Value::from(fields.message.unwrap_or_default()),
                );
                object.extend(fields.other);
                object
            }
        };
        let Ok(line) = serde_json::to_string(&object) else {
            return;
        };
        let stderr = std::io::stderr();
        let mut out = stderr.lock();
        let _ = writeln!(out, "{line}");
    }
}

/// Milliseconds since the Unix epoch (log time only).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pc_node::telemetry::{CoreStalled, GenesisLoaded};

    #[test]
    fn severities_and_the_seed_line() {
        let stalled = Event::CoreStalled(CoreStalled {
            core: 1,
            stalled_ms: 2500,
            waiting_on: "inbox".into(),
        });
        assert_eq!(stalled.severity(), Severity::Warn);
        assert!(!stalled.seed_shaped());
        let seed = Event::GenesisLoaded(GenesisLoaded {
            k: 4,
            commitment: "00".into(),
        });
        assert!(seed.seed_shaped());
        let object: Map<String, Value> = serde_json::from_str(&stalled.to_line()).unwrap();
        assert_eq!(
            object.keys().next().map(String::as_str),
            Some("type"),
            "type first (serde_json keeps insertion order)"
        );
    }
}
