//! `phantom-engine mine` (aliases `miner`, and the `phantom-miner`
//! binary): a proof-of-work worker over the client protocol (DESIGN §1,
//! §5.5). It fetches the mint template from a node, searches nonces on N
//! threads, submits a solution that beats the target (and the open race's
//! best), follows the chain as the tip moves, and reports what became of
//! its mints. PoW gives emission only: a mint orders nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pc_codec::mint::{pow_value, PowHasher};
use pc_codec::{to_hex, Hash32};
use pc_net::frame::{MINT_INVALID, MINT_NOT_BEST, MINT_NOT_SERVED, MINT_TAKEN};
use pc_net::NetMessage;

use crate::error::CliError;
use crate::key_file;

/// Flags of `mine`.
#[derive(clap::Args, Clone)]
pub struct MineArgs {
    /// A node that hosts the mint shard (its core 0's address).
    #[arg(long, default_value = "127.0.0.1:7100")]
    pub node: SocketAddr,
    /// The miner's key file: rewards go to its public key, which must
    /// belong to the mint shard.
    #[arg(long)]
    pub key: PathBuf,
    /// Hashing threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Most hashes per second over all threads (0: as fast as the threads
    /// go); bounds the miner's CPU share.
    #[arg(long, default_value_t = 0)]
    pub max_hashes_per_second: u64,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 5.0)]
    pub status_interval: f64,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the template is fetched again while searching.
const TEMPLATE_POLL: Duration = Duration::from_millis(500);
/// Longest wait for the tip to move after a taken solution.
const WAIT_FOR_TIP: Duration = Duration::from_secs(20);
/// Nonces a thread tries between looks at the stop flag and the pace.
const BATCH: u64 = 4_096;

/// The template fields the miner uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Template {
    network: [u8; 8],
    tip: Hash32,
    target: u128,
    reward: u64,
    count: u64,
    race_best: Option<Hash32>,
}

fn template(node: SocketAddr) -> Result<Template, CliError> {
    let answer = pc_engine::client::request(
        node,
        NetMessage::GetMintTemplate { request: 1 },
        REQUEST_TIMEOUT,
        |m| matches!(m, NetMessage::MintTemplate { request: 1, .. }),
    )?;
    let NetMessage::MintTemplate {
        network,
        prev_mint_id,
        target,
        reward,
        mint_count,
        race_open,
        race_best_pow,
        ..
    } = answer
    else {
        unreachable!("filtered to templates")
    };
    Ok(Template {
        network,
        tip: prev_mint_id,
        target,
        reward,
        count: mint_count,
        race_best: (race_open == 1).then_some(race_best_pow),
    })
}

/// The status of `mint_id` as `node` knows it: (status, round, reward,
/// mature_at).
pub(crate) fn mint_status(
    node: SocketAddr,
    mint_id: Hash32,
) -> Result<(u8, u64, u64, u64), CliError> {
    let answer = pc_engine::client::request(
        node,
        NetMessage::MintStatusQuery {
            request: 1,
            mint_id,
        },
        REQUEST_TIMEOUT,
        |m| matches!(m, NetMessage::MintStatus { request: 1, .. }),
    )?;
    let NetMessage::MintStatus {
        status,
        round,
        reward,
        mature_at,
        ..
    } = answer
    else {
        unreachable!("filtered to statuses")
    };
    Ok((status, round, reward, mature_at))
}

/// The name of a `MintStatus` code.
pub(crate) fn status_name(status: u8) -> &'static str {
    match status {
        1 => "pending",
        2 => "candidate",
        3 => "won",
        4 => "lost",
        5 => "stale or rejected",
        _ => "unknown",
    }
}

/// Searches nonces on `threads` threads for a pow hash below `target`
/// (and below `beat`, if any) until one is found, `stop` is raised, or
/// `deadline` passes. Returns (nonce, pow hash) and adds to `hashes`.
#[allow(clippy::too_many_arguments)]
fn search(
    hasher: &PowHasher,
    target: u128,
    beat: Option<Hash32>,
    threads: u32,
    start: u64,
    max_hps: u64,
    deadline: Instant,
    hashes: &AtomicU64,
) -> Option<(u64, Hash32)> {
    let stop = AtomicBool::new(false);
    let found = std::sync::Mutex::new(None::<(u64, Hash32)>);
    let per_thread = (max_hps > 0).then(|| (max_hps / u64::from(threads)).max(1));
    std::thread::scope(|scope| {
        for thread in 0..u64::from(threads) {
            let (stop, found) = (&stop, &found);
            scope.spawn(move || {
                let began = Instant::now();
                let mut done = 0u64;
                let mut nonce = start.wrapping_add(thread.wrapping_mul(1 << 40));
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    for _ in 0..BATCH {
                        let hash = hasher.hash(nonce);
                        if pow_value(&hash) < target && beat.is_none_or(|best| hash < best) {
                            stop.store(true, Ordering::Relaxed);
                            let mut slot = found.lock().expect("no panics while held");
                            if slot.is_none_or(|(_, h)| hash < h) {
                                *slot = Some((nonce, hash));
                            }
                            break;
                        }
                        nonce = nonce.wrapping_add(1);
                    }
                    done += BATCH;
                    hashes.fetch_add(BATCH, Ordering::Relaxed);
                    if let Some(rate) = per_thread {
                        // Ahead of the pace: sleep until the batch is due.
                        let due = Duration::from_secs_f64(done as f64 / rate as f64);
                        if let Some(wait) = due.checked_sub(began.elapsed()) {
                            std::thread::sleep(wait.min(Duration::from_millis(200)));
                        }
                    }
                }
            });
        }
    });
    found.into_inner().expect("no panics while held")
}

/// Runs the miner.
pub fn mine(args: MineArgs) -> Result<(), CliError> {
    if args.threads == 0 {
        return Err(CliError::Usage("--threads must be at least 1".into()));
    }
    let key = key_file::read(&args.key)?;
    let miner = key.public_key();
    let started = Instant::now();
    let end = args
        .seconds
        .map(|s| started + Duration::from_secs_f64(s.max(0.0)));
    let hashes = Arc::new(AtomicU64::new(0));
    let mut last_status = Instant::now();
    let mut hashes_at_status = 0u64;
    let status_every = Duration::from_secs_f64(args.status_interval.max(0.1));
    // Our submissions still to report: (mint id, tip it extended).
    let mut pending: Vec<(Hash32, Hash32)> = Vec::new();
    let (mut submitted, mut won, mut minted) = (0u64, 0u64, 0u64);
    let mut nonce_base: u64 = rand::random();
    // The tip our taken solution extends, and since when: the miner waits
    // for the tip to move (at most WAIT_FOR_TIP) instead of racing itself.
    let mut waiting_on: Option<(Hash32, Instant)> = None;
    eprintln!(
        "{}",
        serde_json::json!({
            "type": "miner_started",
            "node": args.node.to_string(),
            "miner": to_hex(&miner),
            "address": pc_codec::address::encode_address(&miner),
            "threads": args.threads,
            "max_hashes_per_second": args.max_hashes_per_second,
        })
    );
    loop {
        let now = Instant::now();
        if end.is_some_and(|end| now >= end) {
            break;
        }
        let template = match template(args.node) {
            Ok(template) => template,
            Err(error) => {
                // The node may be restarting: try again shortly.
                eprintln!(
                    "{}",
                    serde_json::json!({"type": "miner_retry", "error": error.to_string()})
                );
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if template.reward == 0 {
            println!(
                "{}",
                serde_json::json!({"type": "miner_done", "reason": "the reward schedule is spent", "mints": template.count})
            );
            break;
        }
        // Report what became of earlier submissions once the tip moved.
        let mut still = Vec::new();
        for (id, tip) in pending.drain(..) {
            if tip == template.tip {
                still.push((id, tip));
                continue;
            }
            let Ok((status, round, reward, mature_at)) = mint_status(args.node, id) else {
                still.push((id, tip));
                continue;
            };
            if status == 3 {
                won += 1;
                minted += reward;
            }
            println!(
                "{}",
                serde_json::json!({
                    "type": "mint", "mint_id": to_hex(&id), "status": status_name(status),
                    "round": round, "reward": reward, "mature_at": mature_at,
                })
            );
        }
        pending = still;
        if waiting_on
            .is_some_and(|(tip, since)| tip == template.tip && since.elapsed() < WAIT_FOR_TIP)
        {
            std::thread::sleep(TEMPLATE_POLL);
        } else {
            waiting_on = None;
            let hasher = PowHasher::new(&template.network, &template.tip, &miner);
            let deadline = (now + TEMPLATE_POLL).min(end.unwrap_or(now + TEMPLATE_POLL));
            let found = search(
                &hasher,
                template.target,
                template.race_best,
                args.threads,
                nonce_base,
                args.max_hashes_per_second,
                deadline,
                &hashes,
            );
            // A fresh random start per search: ranges of earlier polls and
            // of the other threads are not searched again.
            nonce_base = rand::random();
            if let Some((nonce, hash)) = found {
                let answer = match pc_engine::client::request(
                    args.node,
                    NetMessage::SubmitMintSolution {
                        request: 2,
                        prev_mint_id: template.tip,
                        miner,
                        nonce,
                    },
                    REQUEST_TIMEOUT,
                    |m| matches!(m, NetMessage::MintSubmitted { request: 2, .. }),
                ) {
                    Ok(answer) => answer,
                    Err(error) => {
                        eprintln!(
                            "{}",
                            serde_json::json!({"type": "miner_retry", "error": error.to_string()})
                        );
                        continue;
                    }
                };
                let NetMessage::MintSubmitted {
                    mint_id, outcome, ..
                } = answer
                else {
                    unreachable!("filtered to submissions")
                };
                let said = match outcome {
                    MINT_TAKEN => "taken".to_string(),
                    MINT_NOT_BEST => "not the best".to_string(),
                    MINT_NOT_SERVED => "not served (overloaded or no seat)".to_string(),
                    MINT_INVALID => "invalid".to_string(),
                    code => format!("refused: outcome {code}"),
                };
                println!(
                    "{}",
                    serde_json::json!({
                        "type": "mint_submitted", "mint_id": to_hex(&mint_id),
                        "prev_mint_id": to_hex(&template.tip), "nonce": nonce,
                        "pow": format!("{:032x}", pow_value(&hash)), "outcome": said,
                    })
                );
                if outcome == MINT_INVALID {
                    return Err(CliError::Usage(format!(
                        "{}: the node refuses this miner's mints as invalid: is key {} of the mint shard?",
                        args.node,
                        to_hex(&miner)
                    )));
                }
                if outcome == MINT_TAKEN {
                    submitted += 1;
                    pending.push((mint_id, template.tip));
                    waiting_on = Some((template.tip, Instant::now()));
                }
            }
        }
        if last_status.elapsed() >= status_every {
            let total = hashes.load(Ordering::Relaxed);
            let rate = (total - hashes_at_status) as f64 / last_status.elapsed().as_secs_f64();
            eprintln!(
                "{}",
                serde_json::json!({
                    "type": "miner", "hashes_per_s": rate.round(), "hashes": total,
                    "tip": to_hex(&template.tip[..8]), "mints_on_chain": template.count,
                    "submitted": submitted, "won": won, "minted_units": minted,
                })
            );
            last_status = Instant::now();
            hashes_at_status = total;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "type": "miner_summary", "seconds": elapsed,
            "hashes_per_s": (hashes.load(Ordering::Relaxed) as f64 / elapsed.max(1e-9)).round(),
            "submitted": submitted, "won": won, "minted_units": minted,
        })
    );
    Ok(())
}
