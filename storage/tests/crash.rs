//! Crash test: a child process appends with `Durability::Always` and
//! acknowledges each record on stdout only after `sync` returned; the parent
//! SIGKILLs it at random moments and recovers the log after every kill.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::{append_records_until, assert_holds_records, seeded_rng, small_config};
use pc_storage::{Durability, Log};
use rand::Rng;

/// Set by the parent to the log directory; the child does nothing without it.
const CHILD_DIR_VAR: &str = "PC_STORAGE_CRASH_CHILD_DIR";

/// The child stops on its own after this many records, should the parent die.
const CHILD_MAX_RECORDS: u64 = 20_000;

const KILL_ROUNDS: usize = 24;

/// Not a test: the child process of `sigkill_at_random_moments_keeps_every_acknowledged_record`,
/// which runs it with `CHILD_DIR_VAR` set. Without that variable it returns
/// at once; it is ignored so that it never counts as a passing test.
#[test]
#[ignore = "child process of the crash test; only meaningful when that test spawns it"]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
        return;
    };
    let (mut log, _) =
        Log::open(Path::new(&dir), small_config(Durability::Always)).expect("child opens the log");
    let mut stdout = std::io::stdout().lock();
    for _ in 0..CHILD_MAX_RECORDS {
        let seq = log.next_seq();
        append_records_until(&mut log, seq + 1);
        log.sync().expect("child syncs");
        writeln!(stdout, "ack {seq}")
            .and_then(|()| stdout.flush())
            .expect("parent reads acks");
    }
}

#[test]
fn sigkill_at_random_moments_keeps_every_acknowledged_record() {
    let started = Instant::now();
    let (mut rng, seed) = seeded_rng("sigkill_at_random_moments_keeps_every_acknowledged_record");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut recovered_end_seq = 0;
    let mut total_acks = 0;
    let mut last_report = None;
    for round in 0..KILL_ROUNDS {
        let context = format!("seed {seed}, round {round}");
        let mut child = spawn_child(dir.path());
        let mut acks = AckReader::new(&mut child);
        if rng.random_bool(0.5) {
            acks.read_at_least(rng.random_range(1..40));
        } else {
            std::thread::sleep(Duration::from_millis(rng.random_range(0..30)));
        }
        kill_and_reap(&mut child);
        let acked = acks.read_to_end();
        if let Some(&first) = acked.first() {
            assert_eq!(
                first, recovered_end_seq,
                "{context}: the child resumes at the recovered next seq"
            );
        }
        let (log, report) = Log::open(dir.path(), small_config(Durability::Always))
            .unwrap_or_else(|error| panic!("{context}: recovery failed: {error}"));
        let end_seq = log.next_seq();
        assert!(
            end_seq >= recovered_end_seq,
            "{context}: a record that survived recovery was lost"
        );
        if let Some(&last) = acked.last() {
            assert!(
                end_seq > last,
                "{context}: acknowledged seq {last} missing, log ends at {end_seq}"
            );
        }
        assert_holds_records(&log, end_seq);
        total_acks += acked.len();
        recovered_end_seq = end_seq;
        last_report = Some(report);
    }
    let report = last_report.expect("at least one round");
    assert!(
        total_acks >= KILL_ROUNDS,
        "seed {seed}: children acknowledged only {total_acks} records"
    );
    assert!(
        report.segments >= 2,
        "seed {seed}: the run never rolled over a segment: {report:?}"
    );
    eprintln!(
        "{KILL_ROUNDS} kills, {total_acks} acks, {recovered_end_seq} records in {} segments, {:?}",
        report.segments,
        started.elapsed()
    );
}

fn spawn_child(dir: &Path) -> Child {
    let test_binary = std::env::current_exe().expect("test binary path");
    Command::new(test_binary)
        .args([
            "--exact",
            "crash_child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_DIR_VAR, dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child writer")
}

fn kill_and_reap(child: &mut Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) on the pid of our own child, which is not yet reaped.
    let status = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(
        status,
        0,
        "SIGKILL the child: {}",
        std::io::Error::last_os_error()
    );
    child.wait().expect("reap the child");
}

/// Reads the child's `ack <seq>` lines, ignoring the test harness's own output.
struct AckReader {
    lines: BufReader<ChildStdout>,
    acked: Vec<u64>,
}

impl AckReader {
    fn new(child: &mut Child) -> AckReader {
        let stdout = child.stdout.take().expect("piped stdout");
        AckReader {
            lines: BufReader::new(stdout),
            acked: Vec::new(),
        }
    }

    /// Blocks until `count` acks arrived or the child's stdout closed.
    fn read_at_least(&mut self, count: usize) {
        while self.acked.len() < count && self.read_line() {}
    }

    /// Every ack the child printed (call after it died).
    fn read_to_end(mut self) -> Vec<u64> {
        while self.read_line() {}
        self.acked
    }

    fn read_line(&mut self) -> bool {
        let mut line = String::new();
        let read = self.lines.read_line(&mut line).expect("read child stdout");
        if let Some(seq) = line.trim_end().strip_prefix("ack ") {
            self.acked.push(seq.parse().expect("ack line holds a seq"));
        }
        read > 0
    }
}
