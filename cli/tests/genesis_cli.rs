//! The `keygen` and `genesis new / verify` commands, run as the real binary.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn phantom_engine(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phantom-engine"))
        .args(args)
        .output()
        .expect("run phantom-engine")
}

fn new_genesis(dir: &Path, k: &str, shards: &str) -> PathBuf {
    let out = dir.join("net");
    let output = phantom_engine(&[
        "genesis",
        "new",
        "--k",
        k,
        "--shards",
        shards,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

fn verify(path: &Path) -> Output {
    phantom_engine(&["genesis", "verify", "--genesis", path.to_str().unwrap()])
}

/// Writes `text` as a genesis file and asserts that `verify` fails with one
/// stderr line containing every fragment of `expected`.
fn assert_refused(dir: &Path, name: &str, text: &str, expected: &[&str]) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let output = verify(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{name}: accepted");
    assert!(
        output.stdout.is_empty(),
        "{name}: printed {:?}",
        output.stdout
    );
    assert_eq!(stderr.lines().count(), 1, "{name}: not one line: {stderr}");
    assert!(
        stderr.contains(path.to_str().unwrap()),
        "{name}: file not named: {stderr}"
    );
    for fragment in expected {
        assert!(
            stderr.contains(fragment),
            "{name}: {stderr:?} lacks {fragment:?}"
        );
    }
}

fn line_value<'a>(text: &'a str, key: &str) -> &'a str {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap();
    line.split('"').nth(1).unwrap()
}

#[test]
fn genesis_new_writes_a_genesis_that_verifies_and_owner_only_keys() {
    let dir = tempfile::tempdir().unwrap();
    let net = new_genesis(dir.path(), "7", "3");
    let output = verify(&net.join("genesis.toml"));
    assert!(output.status.success());
    let text = std::fs::read_to_string(net.join("genesis.toml")).unwrap();
    let commitment = line_value(&text, "commitment");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("{{\"type\":\"genesis_loaded\",\"k\":7,\"commitment\":\"{commitment}\"}}\n")
    );
    let keys: Vec<_> = std::fs::read_dir(net.join("keys"))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(keys.len(), 7 + 4, "7 validator keys and 4 client keys");
    for key in keys {
        assert_eq!(key.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }
    let with_key = phantom_engine(&[
        "genesis",
        "verify",
        "--genesis",
        net.join("genesis.toml").to_str().unwrap(),
        "--key",
        net.join("keys/validator-05.key").to_str().unwrap(),
    ]);
    let stdout = String::from_utf8(with_key.stdout).unwrap();
    assert!(
        stdout.contains("shard 0 seat 5") && stdout.contains("shard 2 seat 5"),
        "{stdout}"
    );
}

#[test]
fn genesis_verify_names_each_problem_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let net = new_genesis(dir.path(), "4", "2");
    let good = std::fs::read_to_string(net.join("genesis.toml")).unwrap();
    let note = line_value(&good, "genesis_note").to_string();
    let commitment = line_value(&good, "commitment").to_string();
    let keys: Vec<String> = good
        .lines()
        .filter(|l| l.starts_with("key = "))
        .map(|l| l.split('"').nth(1).unwrap().to_string())
        .collect();
    let d = dir.path();

    assert_refused(
        d,
        "bad-hex",
        &good.replace(&keys[1], &format!("zz{}", &keys[1][2..])),
        &["validators[1].key", "bad hex"],
    );
    assert_refused(
        d,
        "bad-note-hex",
        &good.replace(&note, "xyz"),
        &["consensus.genesis_note", "bad hex"],
    );
    let mut wrong = commitment.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    assert_refused(
        d,
        "commitment",
        &good.replace(&commitment, std::str::from_utf8(&wrong).unwrap()),
        &["consensus.commitment", "does not match"],
    );
    assert_refused(
        d,
        "k-zero",
        &good.replace("k = 4", "k = 0"),
        &["consensus.k = 0", "1..=64"],
    );
    assert_refused(
        d,
        "k-65",
        &good.replace("k = 4", "k = 65"),
        &["consensus.k = 65", "1..=64"],
    );
    assert_refused(
        d,
        "duplicate-key",
        &good.replace(&keys[2], &keys[0]),
        &["validators[2].key", "duplicates"],
    );
    let no_consensus: String = good.replacen("[consensus]", "[consensus_renamed]", 1);
    assert_refused(
        d,
        "missing-consensus",
        &no_consensus,
        &["missing section [consensus]"],
    );
    let no_validators: String = good.split("\n[[validators]]").next().unwrap().to_string();
    assert_refused(
        d,
        "missing-validators",
        &no_validators,
        &["missing section [[validators]]"],
    );
    let unfilled = good
        .replace("{ shard = 1, seat = 3 }", "")
        .replace("seat = 3 }, ]", "seat = 3 }]");
    assert_refused(
        d,
        "unfilled-seat",
        &unfilled,
        &["seat 3 of shard 1", "not filled"],
    );
    assert_refused(
        d,
        "missing-field",
        &good.replace(&format!("commitment = \"{commitment}\""), ""),
        &["missing field", "commitment"],
    );
    assert_refused(
        d,
        "k-raised",
        &good.replace("k = 4", "k = 5"),
        &["seat 4 of shard 0", "not filled"],
    );
}

#[test]
fn keygen_writes_an_owner_only_key_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.key");
    let first = phantom_engine(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(first.status.success());
    let public = String::from_utf8(first.stdout).unwrap();
    assert_eq!(public.trim().len(), 64);
    // Its wallet address on stderr: the same key, bech32m with HRP pc.
    let stderr = String::from_utf8(first.stderr).unwrap();
    let address = stderr
        .lines()
        .find_map(|l| l.strip_prefix("address "))
        .unwrap_or_else(|| panic!("no address line in {stderr:?}"));
    assert!(address.starts_with("pc1"), "{address}");
    assert_eq!(
        pc_codec::to_hex(&pc_codec::address::decode_address(address).unwrap()),
        public.trim()
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = std::fs::read(&path).unwrap();
    let second = phantom_engine(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(!second.status.success());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(String::from_utf8_lossy(&second.stderr).contains("v.key"));
}
