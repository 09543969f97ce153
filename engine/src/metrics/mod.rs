//! The node's metrics (DESIGN §9): the cores' snapshots
//! ([`pc_node::CoreMetrics`], handed over a ring once per status interval)
//! kept by the control thread on a [`Board`], rendered as the Prometheus
//! text exposition (`text/plain; version=0.0.4`) by `prometheus-client`
//! ([`render`]), served on `/metrics` by [`http::MetricsServer`]; and the
//! reading side ([`scrape`]) the devnet and the tests use.
//!
//! Families (counters end in `_total`, base units seconds and bytes):
//! `pc_p2p_*` per core (messages and bytes per wire kind, drops by reason,
//! errors, violations, bans, handshake failures, peers, the receive-wait
//! histogram), `pc_node_*` per shard (persistence, observer lag, the
//! header/payload cache, the store-read histograms with the seed's
//! buckets), `pc_shard_*` per shard, process RSS and open fds, and
//! `pc_build_info{version,commit}`. Labels are `core`, `shard`, `kind` and
//! `reason`: all bounded.

pub mod http;
pub mod scrape;

use std::collections::BTreeMap;

use pc_node::metrics::MESSAGE_KINDS;
use pc_node::{CoreMetrics, P2pMetrics, SecondsHistogram, ShardMetrics};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// This build: the crate version and the commit it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// The package version.
    pub version: String,
    /// The git commit (`unknown` outside a checkout).
    pub commit: String,
}

impl BuildInfo {
    /// This binary's.
    pub fn current() -> BuildInfo {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            commit: option_env!("PC_BUILD_COMMIT")
                .unwrap_or("unknown")
                .to_string(),
        }
    }
}

/// The process, read by the control thread at each scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// Resident set, bytes.
    pub resident_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// Seconds since the node started.
    pub uptime_seconds: f64,
}

impl ProcessStats {
    /// This process now, from `/proc` (zeros where it cannot be read).
    pub fn read(uptime_seconds: f64) -> ProcessStats {
        ProcessStats {
            resident_bytes: crate::runtime::host::proc_status_kib("VmRSS").unwrap_or(0) * 1024,
            open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64),
            uptime_seconds,
        }
    }
}

/// The latest snapshot of every core (and the one before, for rates).
#[derive(Debug, Default)]
pub struct Board {
    latest: BTreeMap<usize, CoreMetrics>,
    previous: BTreeMap<usize, CoreMetrics>,
    /// When each core's latest snapshot arrived.
    arrived: BTreeMap<usize, std::time::Instant>,
}

impl Board {
    /// Takes a core's new snapshot.
    pub fn update(&mut self, snapshot: CoreMetrics) {
        self.arrived
            .insert(snapshot.core, std::time::Instant::now());
        if let Some(old) = self.latest.insert(snapshot.core, snapshot) {
            self.previous.insert(old.core, old);
        }
    }

    /// Whether any core has reported.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// What a scrape renders.
    pub fn view(&self, process: ProcessStats, build: &BuildInfo) -> View {
        let mut verify_share = BTreeMap::new();
        for (core, latest) in &self.latest {
            let previous = self.previous.get(core);
            for shard in &latest.shards {
                // The share of the core's time its shard spent verifying
                // over the last snapshot interval.
                let share = previous
                    .and_then(|p| {
                        let before = p.shards.iter().find(|s| s.shard == shard.shard)?;
                        let wall_ns = latest.t_us.checked_sub(p.t_us)?.checked_mul(1000)?;
                        (wall_ns > 0).then(|| {
                            shard.verify_ns.saturating_sub(before.verify_ns) as f64 / wall_ns as f64
                        })
                    })
                    .unwrap_or(0.0);
                verify_share.insert(shard.shard, share.min(1.0));
            }
        }
        let snapshot_age_s = self
            .arrived
            .iter()
            .map(|(core, at)| (*core, at.elapsed().as_secs_f64()))
            .collect();
        View {
            snapshot_age_s,
            cores: self.latest.values().cloned().collect(),
            verify_share,
            process,
            build: build.clone(),
        }
    }
}

/// One scrape's data.
#[derive(Debug, Clone)]
pub struct View {
    /// Every core's latest snapshot, in core order.
    pub cores: Vec<CoreMetrics>,
    /// Per shard: the share of its core's time spent verifying signatures
    /// over the last interval.
    pub verify_share: BTreeMap<u16, f64>,
    /// The process.
    pub process: ProcessStats,
    /// The build.
    pub build: BuildInfo,
    /// Per core: seconds since its latest snapshot arrived.
    pub snapshot_age_s: BTreeMap<usize, f64>,
}

/// The exposition of `view`.
pub fn render(view: &View) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(view.clone()));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String does not fail");
    out
}

type Labels = Vec<(&'static str, String)>;

/// One family's samples.
struct Family<T> {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Labels, T)>,
}

impl<T> Family<T> {
    fn new(name: &'static str, help: &'static str) -> Family<T> {
        Family {
            name,
            help,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: Labels, value: T) {
        self.samples.push((labels, value));
    }
}

fn shard_label(shard: u16) -> Labels {
    vec![("shard", shard.to_string())]
}

fn core_label(core: usize) -> Labels {
    vec![("core", core.to_string())]
}

fn counters<T: prometheus_client::encoding::EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    family: Family<T>,
) -> std::fmt::Result {
    let mut metric =
        encoder.encode_descriptor(family.name, family.help, None, MetricType::Counter)?;
    for (labels, value) in &family.samples {
        metric
            .encode_family(labels)?
            .encode_counter::<NoLabelSet, _, u64>(value, None)?;
    }
    Ok(())
}

fn gauges<T: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    family: Family<T>,
) -> std::fmt::Result {
    let mut metric =
        encoder.encode_descriptor(family.name, family.help, None, MetricType::Gauge)?;
    for (labels, value) in &family.samples {
        metric.encode_family(labels)?.encode_gauge(value)?;
    }
    Ok(())
}

fn histograms(
    encoder: &mut DescriptorEncoder,
    family: Family<SecondsHistogram>,
) -> std::fmt::Result {
    let mut metric =
        encoder.encode_descriptor(family.name, family.help, None, MetricType::Histogram)?;
    for (labels, histogram) in &family.samples {
        let cumulative = histogram.cumulative();
        // Per-bucket counts of the finite bounds; the encoder accumulates
        // them and adds +Inf as the count.
        let buckets: Vec<(f64, u64)> = histogram
            .bounds()
            .iter()
            .enumerate()
            .map(|(i, bound)| {
                let below = if i == 0 { 0 } else { cumulative[i - 1] };
                (*bound, cumulative[i] - below)
            })
            .collect();
        metric
            .encode_family(labels)?
            .encode_histogram::<NoLabelSet>(
                histogram.sum_seconds(),
                histogram.count(),
                &buckets,
                None,
            )?;
    }
    Ok(())
}

/// A family with one sample per shard or per core: its name, help and
/// the value of one snapshot.
type Of<S, T> = (&'static str, &'static str, fn(&S) -> T);

/// A histogram family per shard.
type HistogramOf = (
    &'static str,
    &'static str,
    fn(&ShardMetrics) -> &SecondsHistogram,
);

/// Counters per shard.
const SHARD_COUNTERS: &[Of<ShardMetrics, u64>] = &[
    (
        "pc_shard_checkpoints_signed",
        "Own checkpoints of rounds with exports signed (cross-shard).",
        |s| s.cross.checkpoints_signed,
    ),
    (
        "pc_shard_checkpoints_certified",
        "Own checkpoints certified by q signatures (assembled or adopted).",
        |s| s.cross.checkpoints_certified,
    ),
    (
        "pc_shard_export_bundles_pushed",
        "Export bundles pushed to destination seats, retries included.",
        |s| s.cross.bundles_pushed,
    ),
    (
        "pc_shard_export_bundles_acked",
        "Export bundle pushes a destination seat acknowledged.",
        |s| s.cross.bundles_acked,
    ),
    (
        "pc_shard_export_bundles_received",
        "Export bundles of other shards received, verified and logged.",
        |s| s.cross.bundles_received,
    ),
    (
        "pc_shard_imports_carried",
        "Imports this seat queued into its own anchors.",
        |s| s.cross.imports_carried,
    ),
    (
        "pc_shard_imports_refused",
        "Imports the seat's mempool refused (carried again later).",
        |s| s.cross.imports_refused,
    ),
    (
        "pc_shard_cross_violations",
        "Cross-shard messages of peers refused (forged signatures, certificates or bundles).",
        |s| s.cross.violations,
    ),
    ("pc_node_persist_successes", "Log records appended.", |s| {
        s.persist_ok
    }),
    (
        "pc_node_persist_failures",
        "Log appends that failed (the shard stops).",
        |s| s.persist_failed,
    ),
    (
        "pc_node_cache_headers_hits",
        "Header lookups the cache answered.",
        |s| s.cache.header_hits,
    ),
    (
        "pc_node_cache_headers_misses",
        "Header lookups that read the log.",
        |s| s.cache.header_misses,
    ),
    (
        "pc_node_cache_payloads_hits",
        "Payload lookups the cache answered.",
        |s| s.cache.payload_hits,
    ),
    (
        "pc_node_cache_payloads_misses",
        "Payload lookups that read the log.",
        |s| s.cache.payload_misses,
    ),
    (
        "pc_shard_anchors_accepted",
        "Anchors the shard took in (inserted or pending).",
        |s| s.anchors_accepted,
    ),
    (
        "pc_shard_anchors_rejected",
        "Anchors the shard refused.",
        |s| s.anchors_rejected,
    ),
    (
        "pc_shard_rounds_decided",
        "Rounds decided since start.",
        |s| s.rounds_decided,
    ),
    ("pc_shard_finalized_anchors", "Anchors finalized.", |s| {
        s.finalized_anchors
    }),
    (
        "pc_shard_finalized_events",
        "Micro-events finalized.",
        |s| s.finalized_events,
    ),
    (
        "pc_shard_applied_events",
        "Finalized micro-events that applied.",
        |s| s.applied_events,
    ),
    (
        "pc_shard_rejected_double_spends",
        "Finalized transfers refused for a spent or unknown input.",
        |s| s.rejected_double_spends,
    ),
    (
        "pc_shard_catch_up_requests",
        "GetRange requests made to catch up.",
        |s| s.catch_up_requests,
    ),
    (
        "pc_shard_log_appended_bytes",
        "Log bytes appended since start.",
        |s| s.log_bytes,
    ),
    (
        "pc_shard_signature_verifies",
        "BIP-340 signatures checked.",
        |s| s.signature_verifies,
    ),
    (
        "pc_shard_admitted_events",
        "Client micro-events admission control let through.",
        |s| s.admitted,
    ),
    (
        "pc_shard_refused_events",
        "Client micro-events refused as overloaded.",
        |s| s.refused,
    ),
];

/// Gauges per shard.
const SHARD_GAUGES: &[Of<ShardMetrics, i64>] = &[
    (
        "pc_node_observer_lag_rounds",
        "Rounds this node's DAG is below the committee's.",
        |s| s.observer_lag_rounds as i64,
    ),
    (
        "pc_shard_last_decided_round",
        "The last decided round (-1: none).",
        |s| s.last_decided_round,
    ),
    (
        "pc_shard_state_root_round",
        "The round of the current state root (-1: genesis).",
        |s| s.last_decided_round,
    ),
    (
        "pc_shard_pending_parents",
        "Anchors waiting for their parents.",
        |s| s.pending_parents as i64,
    ),
    (
        "pc_shard_mempool_events",
        "Micro-events waiting for an own anchor.",
        |s| s.mempool as i64,
    ),
    (
        "pc_shard_outstanding_pulls",
        "Pulls sent and not answered yet.",
        |s| s.outstanding_pulls as i64,
    ),
    ("pc_shard_log_records", "Records in the shard's log.", |s| {
        s.log_records as i64
    }),
    (
        "pc_shard_durable_lag_records",
        "Log records appended but not yet durable.",
        |s| s.durable_lag_records as i64,
    ),
    (
        "pc_shard_backlog_events",
        "Micro-events held: mempool, unfinalized and pending anchors.",
        |s| s.backlog as i64,
    ),
    (
        "pc_shard_backlog_bound_events",
        "The backlog admission control admits into.",
        |s| s.backlog_bound as i64,
    ),
    (
        "pc_shard_committee_seats",
        "Seats of the shard's committee (k).",
        |s| s.committee_seats as i64,
    ),
    (
        "pc_shard_committee_quorum",
        "Seats a round needs (q); a validator needs q - 1 peers of the shard.",
        |s| s.committee_quorum as i64,
    ),
];

/// Histograms per shard.
const SHARD_HISTOGRAMS: &[HistogramOf] = &[
    (
        "pc_node_store_header_read_seconds",
        "Log reads of anchor headers (cache misses).",
        |s| &s.store_reads.header,
    ),
    (
        "pc_node_store_payload_read_seconds",
        "Log reads of anchor payloads (cache misses).",
        |s| &s.store_reads.payload,
    ),
    (
        "pc_shard_submit_to_final_seconds",
        "Client micro-events: submission to finality.",
        |s| &s.submit_to_final,
    ),
    (
        "pc_shard_arrival_to_final_seconds",
        "Anchors: arrival to finality.",
        |s| &s.arrival_to_final,
    ),
];

/// Counters per core.
const CORE_COUNTERS: &[Of<P2pMetrics, u64>] = &[
    (
        "pc_p2p_send_errors",
        "Frames sent to a connection that was gone or closing.",
        |p| p.send_errors,
    ),
    (
        "pc_p2p_violations",
        "Protocol violations by peers or source addresses.",
        |p| p.violations,
    ),
    ("pc_p2p_bans", "Addresses banned (five violations).", |p| {
        p.bans
    }),
    (
        "pc_p2p_handshake_failures",
        "Hellos refused and connections refused before they became one.",
        |p| p.handshake_failures,
    ),
];

/// Gauges per core.
const CORE_GAUGES: &[Of<P2pMetrics, i64>] = &[
    (
        "pc_p2p_connected_peers",
        "Distinct verified peers connected.",
        |p| p.connected_peers as i64,
    ),
    ("pc_p2p_connections", "QUIC connections.", |p| {
        p.links as i64
    }),
    (
        "pc_p2p_banned_peers",
        "Addresses the peer book holds banned.",
        |p| p.banned_peers as i64,
    ),
    (
        "pc_node_inbox_frames",
        "Inputs waiting in the core's inbox.",
        |p| p.inbox_frames as i64,
    ),
];

impl Collector for View {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut encoder;
        let shards = || self.cores.iter().flat_map(|core| &core.shards);
        for (name, help, value) in SHARD_COUNTERS {
            let mut family = Family::new(name, help);
            for s in shards() {
                family.add(shard_label(s.shard), value(s));
            }
            counters(e, family)?;
        }
        for (name, help, value) in SHARD_GAUGES {
            let mut family = Family::new(name, help);
            for s in shards() {
                family.add(shard_label(s.shard), value(s));
            }
            gauges(e, family)?;
        }
        for (name, help, value) in SHARD_HISTOGRAMS {
            let mut family = Family::new(name, help);
            for s in shards() {
                family.add(shard_label(s.shard), value(s).clone());
            }
            histograms(e, family)?;
        }
        for (name, help, value) in CORE_COUNTERS {
            let mut family = Family::new(name, help);
            for core in &self.cores {
                family.add(core_label(core.core), value(&core.p2p));
            }
            counters(e, family)?;
        }
        for (name, help, value) in CORE_GAUGES {
            let mut family = Family::new(name, help);
            for core in &self.cores {
                family.add(core_label(core.core), value(&core.p2p));
            }
            gauges(e, family)?;
        }
        self.encode_p2p(e)?;
        self.encode_shard(e)?;
        self.encode_economics(e)?;
        self.encode_process(e)
    }
}

impl View {
    /// The `pc_p2p_*` families labelled by more than the core.
    fn encode_p2p(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let traffic = [
            (
                "pc_p2p_inbound_messages",
                "Frames received, by wire message kind.",
                false,
                true,
            ),
            (
                "pc_p2p_inbound_bytes",
                "Wire bytes of frames received (length prefix included), by kind.",
                true,
                true,
            ),
            (
                "pc_p2p_outbound_messages",
                "Frames queued for sending, by wire message kind.",
                false,
                false,
            ),
            (
                "pc_p2p_outbound_bytes",
                "Wire bytes of frames queued for sending, by kind.",
                true,
                false,
            ),
        ];
        for (name, help, bytes, inbound) in traffic {
            let mut family = Family::new(name, help);
            for core in &self.cores {
                let list = if inbound {
                    &core.p2p.inbound
                } else {
                    &core.p2p.outbound
                };
                for (kind, t) in MESSAGE_KINDS.iter().zip(list) {
                    let mut labels = core_label(core.core);
                    labels.push(("kind", (*kind).to_string()));
                    family.add(labels, if bytes { t.bytes } else { t.messages });
                }
            }
            counters(e, family)?;
        }
        let mut drops = Family::new(
            "pc_p2p_dropped_messages",
            "Messages dropped: a full send queue, the core's inbox bound, a full ring to another core.",
        );
        let mut wait = Family::new(
            "pc_p2p_receive_wait_seconds",
            "Time a received frame or ring message waited in the core's inbox before it was handled.",
        );
        let mut round_trip = Family::new(
            "pc_p2p_round_trip_seconds",
            "QUIC's round-trip time (send to acknowledgement) of each open connection, sampled once per status interval.",
        );
        for core in &self.cores {
            for (reason, value) in [
                ("send_queue", core.p2p.dropped_sends),
                ("inbox", core.p2p.dropped_inbox),
                ("ring", core.p2p.dropped_ring),
            ] {
                let mut labels = core_label(core.core);
                labels.push(("reason", reason.to_string()));
                drops.add(labels, value);
            }
            wait.add(core_label(core.core), core.p2p.receive_wait.clone());
            round_trip.add(core_label(core.core), core.p2p.round_trip.clone());
        }
        counters(e, drops)?;
        histograms(e, wait)?;
        histograms(e, round_trip)
    }

    /// The `pc_shard_*` families that are not a plain value of a snapshot.
    /// Slashes by class and claims (DESIGN §9).
    fn encode_economics(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let mut slashes: Family<u64> = Family::new(
            "pc_shard_slashes",
            "Slashes applied since genesis (finalized state), by offence class.",
        );
        let mut slashed: Family<u64> = Family::new(
            "pc_shard_slashed_units",
            "Units slashed from seats' bonds since genesis (finalized state), by offence class.",
        );
        let mut claims: Family<u64> = Family::new(
            "pc_shard_claims",
            "Claims of owed balances applied since start.",
        );
        let mut claimed: Family<u64> = Family::new(
            "pc_shard_claimed_units",
            "Units paid out by claims applied since start.",
        );
        let mut owed: Family<u64> = Family::new(
            "pc_shard_owed_units",
            "Units owed to the shard's seats and not yet claimed (finalized state).",
        );
        let mut bonded: Family<u64> = Family::new(
            "pc_shard_bonded_units",
            "What remains of the shard's seats' bonds (finalized state).",
        );
        let mut out: Family<u64> = Family::new(
            "pc_shard_slashed_out_seats",
            "Seats of the shard slashed out (no rewards ever again).",
        );
        for s in self.cores.iter().flat_map(|c| &c.shards) {
            let m = &s.economics;
            for (class, name) in pc_shard::economics::OffenceClass::ALL
                .iter()
                .map(|c| (*c as usize, c.name()))
            {
                let labels = || vec![("shard", s.shard.to_string()), ("class", name.to_string())];
                slashes.add(labels(), m.slashes[class]);
                slashed.add(labels(), m.slashed_units[class]);
            }
            claims.add(shard_label(s.shard), m.claims);
            claimed.add(shard_label(s.shard), m.claimed_units);
            owed.add(shard_label(s.shard), m.owed_units);
            bonded.add(shard_label(s.shard), m.bonded_units);
            out.add(shard_label(s.shard), m.slashed_out_seats);
        }
        counters(e, slashes)?;
        counters(e, slashed)?;
        counters(e, claims)?;
        counters(e, claimed)?;
        gauges(e, owed)?;
        gauges(e, bonded)?;
        gauges(e, out)
    }

    fn encode_shard(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let mut decided_age: Family<f64> = Family::new(
            "pc_shard_last_decided_age_seconds",
            "Seconds since this node last decided a round of the shard (since start, if none), as of the core's snapshot.",
        );
        let mut snapshot_age: Family<f64> = Family::new(
            "pc_node_snapshot_age_seconds",
            "Seconds since the core's latest metrics snapshot (one per status interval; a core that stops turning stops sending them).",
        );
        for (core, age) in &self.snapshot_age_s {
            snapshot_age.add(core_label(*core), *age);
        }
        let mut ring: Family<i64> = Family::new(
            "pc_shard_ring_depth",
            "Messages of other cores waiting in the inbox of the shard's core.",
        );
        let mut verify: Family<f64> =
            Family::new("pc_shard_verify_seconds", "Time spent checking signatures.");
        let mut share: Family<f64> = Family::new(
            "pc_shard_verify_time_share",
            "Share of the core's time spent checking signatures over the last interval (0 to 1).",
        );
        for core in &self.cores {
            for s in &core.shards {
                ring.add(shard_label(s.shard), core.p2p.ring_depth as i64);
                decided_age.add(shard_label(s.shard), s.decided_age_us as f64 / 1e6);
                verify.add(shard_label(s.shard), s.verify_ns as f64 / 1e9);
                share.add(
                    shard_label(s.shard),
                    self.verify_share.get(&s.shard).copied().unwrap_or(0.0),
                );
            }
        }
        // Value per peer shard: exported and imported (finalized state),
        // and in flight where this node holds both shards.
        let mut exported: Family<u64> = Family::new(
            "pc_shard_exported_units",
            "Value this shard exported to the peer shard (its finalized state).",
        );
        let mut imported: Family<u64> = Family::new(
            "pc_shard_imported_units",
            "Value this shard imported from the peer shard (its finalized state).",
        );
        let mut in_flight: Family<i64> = Family::new(
            "pc_shard_in_flight_units",
            "Value exported to the peer shard and not yet imported there (both shards held by this node; their states may be at different rounds).",
        );
        let all: Vec<&ShardMetrics> = self.cores.iter().flat_map(|c| &c.shards).collect();
        for s in &all {
            for (peer, value) in s.cross.exported_to.iter().enumerate() {
                if peer == usize::from(s.shard) {
                    continue;
                }
                let labels = || vec![("shard", s.shard.to_string()), ("peer", peer.to_string())];
                exported.add(labels(), *value);
                let taken = s.cross.imported_from.get(peer).copied().unwrap_or(0);
                imported.add(labels(), taken);
                if let Some(dest) = all.iter().find(|d| usize::from(d.shard) == peer) {
                    let landed = dest
                        .cross
                        .imported_from
                        .get(usize::from(s.shard))
                        .copied()
                        .unwrap_or(0);
                    in_flight.add(labels(), *value as i64 - landed as i64);
                }
            }
        }
        counters(e, exported)?;
        counters(e, imported)?;
        gauges(e, in_flight)?;
        // Cross-shard messages by path (ring to or from another core of
        // this node, between shards of one core, to or from peers).
        let mut moved: Family<u64> = Family::new(
            "pc_p2p_cross_shard_messages",
            "Cross-shard messages (checkpoint signatures, certificates, export bundles, acks, pulls) moved by this core, by path and kind.",
        );
        for core in &self.cores {
            let t = &core.p2p.cross;
            for (path, counts) in [
                ("ring_out", t.ring_sent),
                ("ring_in", t.ring_received),
                ("local", t.local),
                ("peer_out", t.sent),
                ("peer_in", t.received),
            ] {
                for (kind, count) in pc_node::crossing::CROSS_KINDS.iter().zip(counts) {
                    moved.add(
                        vec![
                            ("core", core.core.to_string()),
                            ("path", path.to_string()),
                            ("kind", kind.to_string()),
                        ],
                        count,
                    );
                }
            }
        }
        counters(e, moved)?;
        gauges(e, ring)?;
        gauges(e, decided_age)?;
        gauges(e, snapshot_age)?;
        counters(e, verify)?;
        gauges(e, share)
    }

    fn encode_process(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let mut rss: Family<i64> =
            Family::new("pc_process_resident_memory_bytes", "Resident set size.");
        rss.add(Vec::new(), self.process.resident_bytes as i64);
        gauges(e, rss)?;
        let mut fds: Family<i64> = Family::new("pc_process_open_fds", "Open file descriptors.");
        fds.add(Vec::new(), self.process.open_fds as i64);
        gauges(e, fds)?;
        let mut uptime: Family<f64> = Family::new(
            "pc_process_uptime_seconds",
            "Seconds since the node started.",
        );
        uptime.add(Vec::new(), self.process.uptime_seconds);
        gauges(e, uptime)?;
        let mut build: Family<i64> =
            Family::new("pc_build_info", "The build: version and commit (always 1).");
        build.add(
            vec![
                ("version", self.build.version.clone()),
                ("commit", self.build.commit.clone()),
            ],
            1,
        );
        gauges(e, build)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pc_node::metrics::{P2pMetrics, ShardMetrics, LATENCY_BUCKETS_S};

    pub(crate) fn sample_shard(shard: u16) -> ShardMetrics {
        ShardMetrics {
            shard,
            anchors_accepted: 10,
            anchors_rejected: 1,
            rounds_decided: 5,
            last_decided_round: 4,
            finalized_anchors: 8,
            finalized_events: 100,
            applied_events: 99,
            rejected_double_spends: 1,
            submit_to_final: SecondsHistogram::new(LATENCY_BUCKETS_S),
            arrival_to_final: SecondsHistogram::new(LATENCY_BUCKETS_S),
            pending_parents: 0,
            mempool: 3,
            outstanding_pulls: 0,
            catch_up_requests: 0,
            log_bytes: 4096,
            log_records: 20,
            durable_lag_records: 2,
            persist_ok: 20,
            persist_failed: 0,
            observer_lag_rounds: 0,
            signature_verifies: 200,
            verify_ns: 5_000_000,
            cache: Default::default(),
            store_reads: Default::default(),
            admitted: 100,
            refused: 0,
            backlog: 3,
            backlog_bound: 1000,
            committee_seats: 4,
            committee_quorum: 3,
            decided_age_us: 250_000,
            cross: Default::default(),
            economics: Default::default(),
        }
    }

    #[test]
    fn the_exposition_has_the_seed_names_buckets_and_a_verify_share() {
        let mut board = Board::default();
        let mut first = CoreMetrics {
            core: 0,
            t_us: 1_000_000,
            p2p: P2pMetrics::default(),
            shards: vec![sample_shard(0)],
        };
        board.update(first.clone());
        first.t_us = 2_000_000;
        first.shards[0].verify_ns = 255_000_000;
        first.shards[0].store_reads.payload.observe_us(2_000);
        first.shards[0].economics.slashes[0] = 1;
        first.shards[0].economics.claims = 2;
        board.update(first);
        let view = board.view(ProcessStats::default(), &BuildInfo::current());
        assert!((view.verify_share[&0] - 0.25).abs() < 1e-9);
        let text = render(&view);
        for needle in [
            "# TYPE pc_node_cache_headers_hits_total counter",
            "pc_node_cache_payloads_misses_total{shard=\"0\"} 0",
            "pc_node_store_payload_read_seconds_bucket{shard=\"0\",le=\"0.001\"} 0",
            "pc_node_store_payload_read_seconds_bucket{shard=\"0\",le=\"0.005\"} 1",
            "pc_node_store_payload_read_seconds_bucket{shard=\"0\",le=\"+Inf\"} 1",
            "pc_node_store_payload_read_seconds_count{shard=\"0\"} 1",
            "pc_shard_finalized_events_total{shard=\"0\"} 100",
            "pc_shard_verify_time_share{shard=\"0\"} 0.25",
            "pc_p2p_inbound_messages_total{core=\"0\",kind=\"anchors\"} 0",
            "pc_shard_slashes_total{shard=\"0\",class=\"equivocation\"} 1",
            "pc_shard_slashes_total{shard=\"0\",class=\"conflicting_da\"} 0",
            "pc_shard_claims_total{shard=\"0\"} 2",
            "pc_build_info{version=",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("pc_node_store_header_read_seconds_bucket"))
            .collect();
        assert_eq!(buckets.len(), 7, "the seed's six bounds and +Inf");
    }
}
