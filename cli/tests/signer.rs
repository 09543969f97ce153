//! The signer process (`phantom-engine signer`): it signs one header per
//! (shard, seat, seq) and one checkpoint per (shard, round), returns the
//! same signature for a repeat, refuses anything else, and keeps all of it
//! across its own restart — also a crash between persisting a decision and
//! answering it.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::engine;
use pc_codec::cross::Checkpoint;
use pc_codec::genesis::Genesis;
use pc_codec::{AnchorHeader, Bip340, SignatureVerifier};
use pc_engine::signer::{SignerClient, SignerError};

/// A signer of validator 0 of `net`, on `socket`, its state in `state`.
fn start(net: &Path, socket: &Path, state: &Path, crash: Option<&str>) -> Child {
    let mut command = engine();
    command
        .args(["signer", "--genesis"])
        .arg(net.join("genesis.toml"))
        .arg("--key")
        .arg(net.join("keys/validator-00.key"))
        .arg("--listen")
        .arg(format!("unix:{}", socket.display()))
        .arg("--state")
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match crash {
        Some(plan) => command.env("PC_SIGNER_CRASH", plan),
        None => command.env_remove("PC_SIGNER_CRASH"),
    };
    command.spawn().expect("the signer starts")
}

/// A client once the signer accepts connections (at most 10 s).
fn connect(socket: &Path) -> SignerClient {
    let began = Instant::now();
    loop {
        if let Ok(client) = SignerClient::connect(&format!("unix:{}", socket.display())) {
            return client;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the signer never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A header of `seat` at `seq` that keeps every stateless rule: above seq
/// 0 its own anchor at `seq - 1` and another seat's, both of round
/// `seq - 1`, as parents.
fn header(genesis: &Genesis, seat: u8, seq: u64, root: u8) -> AnchorHeader {
    let parent = |creator: u8, id: u8| pc_codec::ParentRef {
        anchor_id: [id; 32],
        creator,
        seq: seq - 1,
        birth_round: seq - 1,
    };
    let parents = if seq == 0 {
        Vec::new()
    } else {
        vec![parent(seat, 1), parent((seat + 1) % 4, 2)]
    };
    AnchorHeader {
        version: pc_codec::PROTOCOL_VERSION,
        network: genesis.network(),
        shard: 0,
        epoch: 0,
        creator: seat,
        seq,
        birth_round: seq,
        parents,
        payload_root: [root; 32],
        payload_count: 1,
        payload_bytes: 100,
    }
}

fn checkpoint(round: u64, root: u8) -> Checkpoint {
    Checkpoint {
        shard: 0,
        round,
        state_root: [root; 32],
        exports_root: [0; 32],
        export_count: 0,
        dest_count: 0,
        snapshot_root: [0; 32],
    }
}

fn refused(result: Result<[u8; 64], SignerError>) -> String {
    match result {
        Err(SignerError::Refused(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn the_signer_signs_each_header_and_checkpoint_once_across_restarts_and_crashes() {
    let temp = tempfile::tempdir().unwrap();
    let net = temp.path().join("net");
    let made = engine()
        .args(["genesis", "new", "--k", "4", "--shards", "2", "--out"])
        .arg(&net)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", common::text(&made));
    let genesis = pc_engine::genesis_file::load(&net.join("genesis.toml"))
        .unwrap()
        .genesis;
    let seat = genesis.validators[0]
        .seats
        .iter()
        .find(|s| s.shard == 0)
        .unwrap()
        .seat;
    let socket = temp.path().join("signer.sock");
    let state = temp.path().join("signer.state");

    let child = start(&net, &socket, &state, None);
    let mut client = connect(&socket);
    let key = client.public_key().unwrap();
    assert_eq!(key, genesis.validators[0].key);
    // A header signs once; its repeat gets the very same signature; any
    // other header at that seq, or below the highest, is refused.
    let first = header(&genesis, seat, 0, 1);
    let sig = client.sign_header(&first).unwrap();
    assert!(Bip340.verify(&key, &first.id(), &sig));
    assert_eq!(
        client.sign_header(&first).unwrap(),
        sig,
        "a repeat is the same signature"
    );
    assert!(refused(client.sign_header(&header(&genesis, seat, 0, 2))).contains("fork"));
    let fifth = header(&genesis, seat, 5, 1);
    let sig5 = client.sign_header(&fifth).unwrap();
    assert!(refused(client.sign_header(&header(&genesis, seat, 3, 1))).contains("below"));
    // Another seat, shard or network is not this key's.
    let other_seat = (seat + 1) % 4;
    assert!(refused(client.sign_header(&header(&genesis, other_seat, 9, 1))).contains("no seat"));
    let mut foreign = header(&genesis, seat, 9, 1);
    foreign.network = [0xee; 8];
    assert!(refused(client.sign_header(&foreign)).contains("network"));
    // A header that breaks a rule would be slashable: not signed.
    let mut lone = header(&genesis, seat, 9, 1);
    lone.parents.truncate(1);
    assert!(refused(client.sign_header(&lone)).contains("breaks a rule"));
    let mut unsatisfiable = header(&genesis, seat, 9, 1);
    unsatisfiable.payload_bytes = 2_000_000;
    assert!(refused(client.sign_header(&unsatisfiable)).contains("breaks a rule"));
    // Checkpoints: one per round.
    let cp = checkpoint(7, 1);
    let cp_sig = client.sign_checkpoint(&cp).unwrap();
    assert!(Bip340.verify(&key, &cp.id(&genesis.network()), &cp_sig));
    assert_eq!(client.sign_checkpoint(&cp).unwrap(), cp_sig);
    assert!(refused(client.sign_checkpoint(&checkpoint(7, 2))).contains("another checkpoint"));
    // The TLS binding, and nothing else.
    let binding = client.sign_tls_binding(b"spki bytes").unwrap();
    let message = pc_codec::ids::derive(
        pc_codec::ids::context::TLS_BINDING,
        &[b"spki bytes", &genesis.network()],
    );
    assert!(Bip340.verify(&key, &message, &binding));
    assert!(refused(client.raw(&[9, 1, 2, 3])).contains("not one the signer signs"));
    assert!(refused(client.raw(&[1, 0xff])).contains("not an anchor header"));
    stop(child);

    // Killed and restarted: the marks held.
    let child = start(&net, &socket, &state, None);
    let mut client = connect(&socket);
    assert_eq!(client.sign_header(&fifth).unwrap(), sig5);
    assert!(refused(client.sign_header(&header(&genesis, seat, 5, 3))).contains("fork"));
    assert_eq!(client.sign_checkpoint(&cp).unwrap(), cp_sig);
    assert!(refused(client.sign_checkpoint(&checkpoint(7, 3))).contains("another checkpoint"));
    stop(child);

    // A crash after the decision is synced and before the answer: the
    // node got nothing; after the restart the same header gets the
    // persisted signature, another header at that seq is refused.
    let mut child = start(&net, &socket, &state, Some("after-persist:1"));
    let mut client = connect(&socket);
    let sixth = header(&genesis, seat, 6, 1);
    assert!(matches!(
        client.sign_header(&sixth),
        Err(SignerError::Io { .. })
    ));
    assert_eq!(child.wait().unwrap().code(), Some(86), "the injected crash");
    let child = start(&net, &socket, &state, None);
    let mut client = connect(&socket);
    let sig6 = client.sign_header(&sixth).unwrap();
    assert!(Bip340.verify(&key, &sixth.id(), &sig6));
    assert!(refused(client.sign_header(&header(&genesis, seat, 6, 4))).contains("fork"));
    // Latency of a signature round trip (fsync included), for the record.
    let began = Instant::now();
    let n = 50u64;
    for seq in 100..100 + n {
        client.sign_header(&header(&genesis, seat, seq, 1)).unwrap();
    }
    println!(
        "signer: {n} new headers signed, {:.0} µs per signature (round trip and fsync)",
        began.elapsed().as_micros() as f64 / n as f64
    );
    stop(child);

    // A torn last line (a crash mid-append) is dropped, not fatal.
    let mut text = std::fs::read_to_string(&state).unwrap();
    text.push_str("h 0 0 200 abcd");
    std::fs::write(&state, text).unwrap();
    let child = start(&net, &socket, &state, None);
    let mut client = connect(&socket);
    assert!(refused(client.sign_header(&sixth)).contains("below"));
    stop(child);
}
