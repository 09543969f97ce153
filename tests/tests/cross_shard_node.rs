//! Cross-shard carrying through one node's core (pc-node's `NodeCore`
//! with two shards on one core, real BIP-340 keys): a certified `Exports`
//! bundle from a verified peer is logged before its ack goes out, and
//! forged checkpoint signatures, certificates and bundles from a peer are
//! scored violations that close its connection and change no state; an
//! anchor carrying an Import with a forged certificate is refused and
//! scores its sender down; forged, foreign or undecodable evidence from a
//! peer is scored and a proven offence queued once; hostile claims from a
//! client get receipts with their reasons; balance queries and unspent
//! pages, which scan the UTXO slice, are held to each source's share and
//! to the core's scan budget over every source.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use pc_codec::cross::{
    leaves_root, CertifiedCheckpoint, Checkpoint, CheckpointSig, DestEntry, ExportLeaf,
    ExportsBundle, RoundExports, NO_ROUND,
};
use pc_codec::genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisValidator, SeatAssignment,
};
use pc_codec::ids::shard_of;
use pc_codec::{LogRecordKind, PublicKeyBytes, SigningKey};
use pc_net::peer_book::PeerBook;
use pc_net::{ConnId, Hello, NetEvent, NetMessage, SendError, ShardPort, ALPN};
use pc_node::{
    node_shard_limits, CoreConfig, CoreMsg, MemStore, NodeCore, NodeIo, Now, ShardHost, ShardStore,
};
use pc_shard::machine::Role;

const K: u8 = 4;
const SHARDS: u16 = 2;

fn key(validator: u8) -> SigningKey {
    SigningKey::from_secret_bytes(&[validator + 0x51; 32]).unwrap()
}

fn addr(validator: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9000 + u16::from(validator)))
}

fn spki(validator: u8) -> Vec<u8> {
    blake3::hash(&key(validator).public_key())
        .as_bytes()
        .to_vec()
}

/// An owner key of `shard`.
fn owner_in(shard: u16) -> PublicKeyBytes {
    (1..=255u8)
        .map(|n| {
            SigningKey::from_secret_bytes(&[n; 32])
                .unwrap()
                .public_key()
        })
        .find(|k| shard_of(k, SHARDS) == shard)
        .unwrap()
}

/// Four validators, each with seat `i` of both shards (as devnet's).
fn genesis() -> Genesis {
    Genesis {
        params: ConsensusParams::v0(K, SHARDS),
        note_commitment: [7; 32],
        validators: (0..K)
            .map(|v| GenesisValidator {
                key: key(v).public_key(),
                bond: 10,
                seats: (0..SHARDS)
                    .map(|shard| SeatAssignment { shard, seat: v })
                    .collect(),
            })
            .collect(),
        allocations: vec![GenesisAllocation {
            owner: owner_in(0),
            amount: 1_000,
            outputs: 4,
        }],
    }
}

/// What the core asked of its driver.
#[derive(Default)]
struct Io {
    frames: Vec<(ConnId, NetMessage)>,
    closed: Vec<ConnId>,
}

impl NodeIo for Io {
    fn send_frame(&mut self, conn: ConnId, message: &NetMessage) -> Result<usize, SendError> {
        self.frames.push((conn, message.clone()));
        Ok(64)
    }
    fn close(&mut self, conn: ConnId, _code: u32, _reason: &str) {
        self.closed.push(conn);
    }
    fn connect(&mut self, _addr: SocketAddr) -> Result<ConnId, String> {
        Err("no dialing in this test".into())
    }
    fn forward(&mut self, _core: usize, _message: CoreMsg) -> bool {
        false
    }
}

struct Node {
    core: NodeCore,
    io: Io,
    stores: Vec<Rc<RefCell<MemStore>>>,
    now: Now,
}

impl Node {
    /// Validator 0's node, both shards on its one core.
    fn new(genesis: &Arc<Genesis>) -> Node {
        let mut hosts = Vec::new();
        let mut stores = Vec::new();
        for shard in 0..SHARDS {
            let store = Rc::new(RefCell::new(MemStore::default()));
            let dyn_store: Rc<RefCell<dyn ShardStore>> = store.clone();
            let (host, _) = ShardHost::restore(
                genesis,
                shard,
                0,
                Role::Seat {
                    seat: 0,
                    signer: pc_shard::machine::SharedSigner::local(key(0)),
                },
                node_shard_limits(),
                dyn_store,
                None,
                (0, 0),
                std::iter::empty(),
            )
            .unwrap();
            hosts.push(host);
            stores.push(store);
        }
        let ports = (0..SHARDS)
            .map(|shard| ShardPort { shard, port: 9000 })
            .collect();
        let hello = Hello::sign(&key(0), ports, &spki(0), &genesis.network(), &[1; 32]);
        let now = Now {
            mono_us: 1_000_000,
            unix_s: 1_800_000_000,
        };
        let config = CoreConfig {
            core: 0,
            genesis: genesis.clone(),
            placement: vec![0; usize::from(SHARDS)],
            hello: Some(hello),
            own_index: Some(0),
            own_addrs: vec![addr(0)],
            book: PeerBook::empty("cross-shard-node-test.book"),
            status_interval_us: 1_000_000,
            crash: None,
            verify_per_s: 10_000,
        };
        Node {
            core: NodeCore::new(config, hosts, now),
            io: Io::default(),
            stores,
            now,
        }
    }

    fn net(&mut self, event: NetEvent) {
        self.now.mono_us += 1_000;
        self.core.handle_net(&mut self.io, event, self.now).unwrap();
    }

    /// A verified connection `conn` from validator `peer`.
    fn connect(&mut self, conn: u64, peer: u8, genesis: &Genesis) {
        self.net(NetEvent::Connected {
            conn: ConnId(conn),
            remote: addr(peer),
            peer_spki: Some(spki(peer)),
            alpn: ALPN.to_vec(),
        });
        let ports = (0..SHARDS)
            .map(|shard| ShardPort { shard, port: 9000 })
            .collect();
        let hello = Hello::sign(
            &key(peer),
            ports,
            &spki(peer),
            &genesis.network(),
            &[peer; 32],
        );
        self.frame(conn, NetMessage::Hello(hello));
        assert!(
            self.core.verified_peers().contains(&u32::from(peer)),
            "validator {peer} verified on conn {conn}"
        );
    }

    fn frame(&mut self, conn: u64, message: NetMessage) {
        self.net(NetEvent::Frame {
            conn: ConnId(conn),
            message,
            bytes: 100,
        });
    }

    fn records(&self, shard: u16) -> Vec<LogRecordKind> {
        self.stores[usize::from(shard)]
            .borrow()
            .records()
            .iter()
            .map(|(kind, _)| *kind)
            .collect()
    }

    /// Validator `peer`'s score in the node's peer book.
    fn score(&self, peer: u8) -> u16 {
        self.core
            .book()
            .get(addr(peer))
            .map(|entry| entry.score_tenths)
            .unwrap()
    }

    fn roots(&self) -> Vec<pc_codec::Hash32> {
        self.core
            .shards()
            .map(|host| host.machine().state().state_root())
            .collect()
    }
}

/// Round 5 of shard 1 with two exports to shard 0, certified by
/// validators 0, 1 and 2 (q = 3 of 4): its bundle for shard 0.
fn bundle(genesis: &Genesis) -> ExportsBundle {
    let owner = owner_in(0);
    let leaves: Vec<ExportLeaf> = (0..2u16)
        .map(|i| ExportLeaf {
            dest: 0,
            tx_id: [i as u8 + 9; 32],
            output_index: i,
            amount: 50 + u64::from(i),
            owner,
        })
        .collect();
    let entry = DestEntry {
        dest: 0,
        count: leaves.len() as u32,
        root: leaves_root(&leaves),
        prev_round: NO_ROUND,
    };
    let exports = RoundExports {
        entries: vec![(entry, leaves.clone())],
    };
    let checkpoint = Checkpoint {
        shard: 1,
        round: 5,
        state_root: [3; 32],
        exports_root: exports.root(),
        export_count: exports.export_count(),
        dest_count: exports.dest_count(),
        snapshot_root: [0; 32],
    };
    let id = checkpoint.id(&genesis.network());
    let cert = CertifiedCheckpoint {
        checkpoint,
        mask: 0b0111,
        signatures: (0..3).map(|v| key(v).sign(&id, &[v; 32])).collect(),
    };
    ExportsBundle {
        cert,
        entry,
        entry_proof: exports.entry_proof(0).unwrap(),
        leaves,
    }
}

#[test]
fn a_peers_bundle_is_logged_then_acked_and_forgeries_are_scored_violations() {
    let genesis = Arc::new(genesis());
    let mut node = Node::new(&genesis);
    node.connect(1, 1, &genesis);
    let roots = node.roots();

    // A certified bundle from validator 1 (seat 1 of shard 1): logged at
    // shard 0, acked only once durable.
    let good = bundle(&genesis);
    node.frame(1, NetMessage::Exports(Box::new(good.clone())));
    assert!(node.io.closed.is_empty(), "a good bundle is no violation");
    assert_eq!(node.records(0), vec![LogRecordKind::ExportsReceived]);
    let acked = |io: &Io| {
        io.frames.iter().any(|(conn, m)| {
            *conn == ConnId(1)
                && *m
                    == NetMessage::ExportsAck {
                        source: 1,
                        round: 5,
                        dest: 0,
                    }
        })
    };
    assert!(!acked(&node.io), "no ack before the record is durable");
    // A repeated push before then: not logged twice, not acked early.
    node.frame(1, NetMessage::Exports(Box::new(good.clone())));
    assert_eq!(node.records(0), vec![LogRecordKind::ExportsReceived]);
    assert!(
        !acked(&node.io),
        "no ack of a repeat before the record is durable"
    );
    node.stores[0].borrow_mut().mark_durable(1);
    node.now.mono_us += 1_000;
    node.core
        .handle_durable(&mut node.io, 0, 0, node.now)
        .unwrap();
    assert!(acked(&node.io), "acked once durable: {:?}", node.io.frames);
    // The same bundle again: acked, not logged twice.
    node.frame(1, NetMessage::Exports(Box::new(good.clone())));
    assert_eq!(node.records(0), vec![LogRecordKind::ExportsReceived]);

    let violations = |node: &Node| node.core.counters().violations;
    let mut conn = 1;
    let mut forged = Vec::new();
    // Leaves that do not match the entry.
    let mut bad = good.clone();
    bad.leaves[1].amount += 1;
    forged.push((
        "Exports with a changed leaf",
        NetMessage::Exports(Box::new(bad)),
    ));
    // A certificate with a signature that does not verify.
    let mut bad = good.clone();
    bad.cert.signatures[2][5] ^= 1;
    forged.push((
        "CheckpointCert with a bad signature",
        NetMessage::CheckpointCert(bad.cert.clone()),
    ));
    forged.push((
        "Exports with a bad certificate",
        NetMessage::Exports(Box::new(bad)),
    ));
    // A certificate signed by fewer than q seats.
    let mut bad = good.clone();
    bad.cert.mask = 0b0011;
    bad.cert.signatures.pop();
    forged.push((
        "an under-signed certificate",
        NetMessage::CheckpointCert(bad.cert),
    ));
    // A checkpoint signature of shard 0 that does not verify (a round
    // ahead of this node: checked on arrival all the same).
    let mut checkpoint = good.cert.checkpoint;
    checkpoint.shard = 0;
    let signature = key(1).sign(&[0; 32], &[1; 32]);
    forged.push((
        "CheckpointSig with a bad signature",
        NetMessage::CheckpointSig(CheckpointSig {
            checkpoint,
            seat: 1,
            signature,
        }),
    ));
    for (what, message) in forged {
        let before = violations(&node);
        node.frame(conn, message);
        assert_eq!(violations(&node), before + 1, "{what}: a violation");
        assert!(
            node.io.closed.contains(&ConnId(conn)),
            "{what}: the connection is closed"
        );
        assert_eq!(node.roots(), roots, "{what}: no state change");
        assert_eq!(
            node.records(0),
            vec![LogRecordKind::ExportsReceived],
            "{what}: nothing logged"
        );
        assert!(node.records(1).is_empty(), "{what}: nothing logged");
        // The peer comes back on a new connection (four violations stay
        // under the ban).
        conn += 1;
        node.connect(conn, 2 + (conn % 2) as u8, &genesis);
    }
}

#[test]
fn an_anchor_carrying_a_forged_import_is_refused_and_scored() {
    use pc_codec::{AnchorBuilder, Encode, MicroEvent};
    let genesis = Arc::new(genesis());
    let mut node = Node::new(&genesis);
    node.connect(1, 1, &genesis);
    let roots = node.roots();
    // Validator 1 (seat 1 of shard 0) signs an anchor of shard 0 whose
    // Import carries a certificate with a signature that does not verify.
    let mut bad = bundle(&genesis);
    bad.cert.signatures[0][9] ^= 1;
    let proofs = pc_codec::cross::leaf_proofs(&bad.leaves);
    let import = bad.import(0, proofs[0].clone(), true);
    let anchor = AnchorBuilder::new(genesis.network(), 0, 1, 0)
        .birth_round(0)
        .event(MicroEvent::Import(Box::new(import)))
        .sign(&key(1), &[2; 32])
        .unwrap();
    let score = |node: &Node| node.score(1);
    let before = score(&node);
    node.frame(
        1,
        NetMessage::Anchors {
            shard: 0,
            anchors: vec![anchor.to_bytes()],
        },
    );
    let host = node.core.shard(0).unwrap();
    assert_eq!(host.counters().refused_anchors, 1, "the anchor is refused");
    assert_eq!(host.counters().anchors, 0);
    assert!(score(&node) < before, "the sender's score dropped");
    assert_eq!(node.roots(), roots, "no state change");
    assert!(node.records(0).is_empty(), "nothing logged");
    // The control: the same anchor with the certificate intact, from
    // validator 2, is taken.
    let good = bundle(&genesis);
    let proofs = pc_codec::cross::leaf_proofs(&good.leaves);
    let anchor = AnchorBuilder::new(genesis.network(), 0, 2, 0)
        .birth_round(0)
        .event(MicroEvent::Import(Box::new(good.import(
            0,
            proofs[0].clone(),
            true,
        ))))
        .sign(&key(2), &[3; 32])
        .unwrap();
    node.connect(2, 2, &genesis);
    node.frame(
        2,
        NetMessage::Anchors {
            shard: 0,
            anchors: vec![anchor.to_bytes()],
        },
    );
    assert_eq!(node.core.shard(0).unwrap().counters().anchors, 1);
}

#[test]
fn forged_evidence_and_claims_are_refused_with_a_reason_and_a_peers_are_scored() {
    use pc_codec::{
        AnchorBuilder, Claim, Decode, Encode, MerkleProof, MicroEvent, Offence, PayoutLeaf,
    };
    use pc_net::frame::{EventOutcome, RejectReason};
    let genesis = Arc::new(genesis());
    let mut node = Node::new(&genesis);
    node.connect(1, 1, &genesis);
    let score = |node: &Node| node.score(1);
    let mempool = |node: &Node| node.core.shard(0).unwrap().machine().mempool_len();
    let checkpoint = |shard: u16, root: u8| Checkpoint {
        shard,
        round: 3,
        state_root: [root; 32],
        exports_root: [0; 32],
        export_count: 0,
        dest_count: 0,
        snapshot_root: [0; 32],
    };
    let signed = |seat: u8, checkpoint: Checkpoint| CheckpointSig {
        checkpoint,
        seat,
        signature: key(seat).sign(&checkpoint.id(&genesis.network()), &[0; 32]),
    };
    let evidence = |offence: Offence| NetMessage::Evidence {
        shard: 0,
        bytes: MicroEvent::Offence(Box::new(offence)).to_bytes(),
    };
    let roots = node.roots();
    // Bytes that do not decode, a fork with a forged signature, and one of
    // another shard's checkpoints: each costs the peer, none is queued.
    let mut forged = signed(2, checkpoint(0, 2));
    forged.signature[5] ^= 1;
    for message in [
        NetMessage::Evidence {
            shard: 0,
            bytes: vec![5, 9, 9],
        },
        evidence(Offence::CheckpointFork {
            a: signed(2, checkpoint(0, 1)),
            b: forged,
        }),
        evidence(Offence::CheckpointFork {
            a: signed(2, checkpoint(1, 1)),
            b: signed(2, checkpoint(1, 2)),
        }),
    ] {
        let before = score(&node);
        node.frame(1, message);
        assert!(score(&node) < before, "a refused offence is scored");
        assert_eq!(mempool(&node), 0);
    }
    // A proven fork of seat 2 in shard 0: taken once, not scored.
    let before = score(&node);
    let fork = evidence(Offence::CheckpointFork {
        a: signed(2, checkpoint(0, 1)),
        b: signed(2, checkpoint(0, 2)),
    });
    node.frame(1, fork.clone());
    node.frame(1, fork);
    assert_eq!(score(&node), before);
    // Taken into the seat's next own anchor, once.
    let carried = |node: &Node| -> usize {
        node.stores[0]
            .borrow()
            .records()
            .iter()
            .filter(|(kind, _)| *kind == LogRecordKind::AnchorAccepted)
            .filter_map(|(_, body)| pc_codec::SignedAnchor::from_bytes(body).ok())
            .flat_map(|a| a.payload.events)
            .filter(|e| matches!(e, MicroEvent::Offence(_)))
            .count()
            + mempool(node)
    };
    assert_eq!(carried(&node), 1, "queued once");
    // An anchor of seat 1 carrying a forged offence is refused and scored.
    let anchor = AnchorBuilder::new(genesis.network(), 0, 1, 0)
        .birth_round(0)
        .event(MicroEvent::Offence(Box::new(Offence::CheckpointFork {
            a: signed(3, checkpoint(0, 1)),
            b: forged,
        })))
        .sign(&key(1), &[4; 32])
        .unwrap();
    let before = score(&node);
    node.frame(
        1,
        NetMessage::Anchors {
            shard: 0,
            anchors: vec![anchor.to_bytes()],
        },
    );
    assert!(score(&node) < before, "the sender's score dropped");
    assert_eq!(node.core.shard(0).unwrap().counters().anchors, 0);
    assert_eq!(node.roots(), roots, "no state change");

    // A client's claims: of a key without a seat, of a root never
    // finalized, with a forged signature: receipts with reasons.
    node.net(NetEvent::Connected {
        conn: ConnId(9),
        remote: SocketAddr::from(([127, 0, 0, 1], 9999)),
        peer_spki: None,
        alpn: ALPN.to_vec(),
    });
    let claim = |signer: &SigningKey, round: u64| {
        let mut claim = Claim {
            round,
            leaf: PayoutLeaf {
                recipient: signer.public_key(),
                amount: 5,
            },
            proof: MerkleProof {
                index: 0,
                leaf_count: 1,
                siblings: vec![],
            },
            owner: signer.public_key(),
            signature: [0; 64],
        };
        claim.signature = signer.sign(&claim.signing_message(&genesis.network(), 0), &[0; 32]);
        claim
    };
    let client = SigningKey::from_secret_bytes(&[0x77; 32]).unwrap();
    let mut forged_claim = claim(&key(2), 0);
    forged_claim.signature[1] ^= 1;
    let events: Vec<Vec<u8>> = [claim(&client, 0), claim(&key(2), 40), forged_claim]
        .into_iter()
        .map(|c| MicroEvent::Claim(c).to_bytes())
        .collect();
    node.frame(
        9,
        NetMessage::SubmitMicroEvents {
            request: 5,
            shard: 0,
            events,
        },
    );
    let results = node
        .io
        .frames
        .iter()
        .find_map(|(conn, m)| match m {
            NetMessage::Receipt {
                request: 5,
                results,
                ..
            } if *conn == ConnId(9) => Some(results.clone()),
            _ => None,
        })
        .expect("a receipt");
    let reasons: Vec<(RejectReason, String)> = results
        .into_iter()
        .map(|r| match r.outcome {
            EventOutcome::Rejected { reason, detail } => (reason, detail),
            EventOutcome::Accepted => panic!("a hostile claim was accepted"),
        })
        .collect();
    assert_eq!(reasons[0].0, RejectReason::WrongShard, "{:?}", reasons[0]);
    assert!(reasons[0].1.contains("no seat"), "{:?}", reasons[0]);
    assert_eq!(reasons[1].0, RejectReason::Invalid, "{:?}", reasons[1]);
    assert!(
        reasons[1].1.contains("ClaimRootUnknown"),
        "{:?}",
        reasons[1]
    );
    assert_eq!(reasons[2].0, RejectReason::BadSignature, "{:?}", reasons[2]);
    assert_eq!(mempool(&node), 0, "no claim queued");
}

#[test]
fn scanning_queries_are_held_to_the_source_share_and_the_cores_scan_budget() {
    // Shard 0's slice holds 2 049 genesis lines of one owner, the last of
    // 60 000 outputs: a balance query visits 2 049 entries, an unspent page
    // those and every unspent output of the owner's lines. A query is
    // answered while its budgets have some left and takes its whole cost.
    let lines = 2_049u64;
    let big = 60_000u64;
    let mut genesis = genesis();
    genesis
        .allocations
        .extend((2..lines).map(|_| GenesisAllocation {
            owner: owner_in(0),
            amount: 1_000,
            outputs: 1,
        }));
    genesis.allocations.push(GenesisAllocation {
        owner: owner_in(0),
        amount: 1,
        outputs: big as u32,
    });
    let balance = 4_000 + 1_000 * (lines - 2) + big;
    let genesis = Arc::new(genesis);
    let mut node = Node::new(&genesis);
    let state = node.core.shard(0).unwrap().machine().state();
    assert_eq!(state.scan_len() as u64, lines);
    let page_cost = lines + 4 + (lines - 2) + big;
    assert_eq!(state.unspent_scan_len(&owner_in(0)) as u64, page_cost);
    let core_rate = u64::from(pc_node::SCAN_OUTPUTS_PER_S);
    let source_rate = core_rate / u64::from(pc_node::SCAN_SOURCE_SHARE);
    // Answers from a full bucket of `tokens`: while some are left.
    let answers = |tokens: u64, cost: u64| tokens.div_ceil(cost) as usize;
    let sources = 40u8;
    let start = node.now;
    let at = |us: u64| Now {
        mono_us: start.mono_us + us,
        unix_s: start.unix_s + us / 1_000_000,
    };
    for client in 0..sources {
        let event = NetEvent::Connected {
            conn: ConnId(100 + u64::from(client)),
            remote: SocketAddr::from(([10, 0, 0, client], 5000)),
            peer_spki: None,
            alpn: ALPN.to_vec(),
        };
        node.core.handle_net(&mut node.io, event, at(0)).unwrap();
    }
    let ask = |node: &mut Node, client: u8, message: NetMessage, now: Now| {
        let query = NetEvent::Frame {
            conn: ConnId(100 + u64::from(client)),
            message,
            bytes: 40,
        };
        node.core.handle_net(&mut node.io, query, now).unwrap();
    };
    let balance_query = NetMessage::BalanceQuery {
        request: 1,
        owner: owner_in(0),
    };
    let answered = |node: &mut Node| {
        let frames = std::mem::take(&mut node.io.frames);
        let mut count = 0;
        for (_, message) in frames {
            match message {
                NetMessage::Balance { amount, .. } => {
                    assert_eq!(amount, balance, "the owner's balance");
                    count += 1;
                }
                NetMessage::Unspent { outputs, more, .. } => {
                    assert_eq!((outputs.len(), more), (256, 1), "a full page");
                    count += 1;
                }
                _ => {}
            }
        }
        count
    };
    // 40 sources at one instant, 39 within their share and the last asking
    // for more than its share: the core's budget answers one second's
    // worth, and what the last source's refused queries took of its share
    // goes back.
    for client in 0..sources {
        let asks = if client + 1 == sources { 600 } else { 100 };
        for _ in 0..asks {
            ask(&mut node, client, balance_query.clone(), at(0));
        }
    }
    let first = answers(core_rate, lines);
    assert!(first < 39 * 100 + 600 && first > 39 * 100);
    assert_eq!(answered(&mut node), first, "one second of the core's scans");
    // 10 ms later the core's budget has paid off its debt and refilled a
    // little; the last source's share is still nearly whole (without the
    // refunds it would owe).
    let debt = first as u64 * lines - core_rate;
    for _ in 0..100 {
        ask(&mut node, sources - 1, balance_query.clone(), at(10_000));
    }
    assert_eq!(
        answered(&mut node),
        answers(core_rate / 100 - debt, lines),
        "the core's refill, all to the last source"
    );
    // Two seconds on, every bucket is full: one source alone gets its
    // share of balances; another its share of unspent pages, which cost
    // the owner's genesis outputs too.
    for _ in 0..1_000 {
        ask(&mut node, 0, balance_query.clone(), at(2_000_000));
    }
    assert_eq!(answered(&mut node), answers(source_rate, lines));
    for _ in 0..100 {
        let page = NetMessage::UnspentQuery {
            request: 2,
            owner: owner_in(0),
            after: None,
            max: 256,
        };
        ask(&mut node, 1, page, at(2_000_000));
    }
    assert_eq!(answered(&mut node), answers(source_rate, page_cost));
}

#[test]
fn submissions_the_shard_refuses_are_given_back_to_the_sources_budget() {
    use pc_net::frame::{EventOutcome, RejectReason};
    // One source offers 12 800 micro-events at one instant, far past the
    // fresh shard's capacity bound and past the source's budget of 8 192
    // a second. The shard takes what its bound has room for and refuses
    // the rest as overloaded; the refused ones cost the source nothing, so
    // no event is refused for the source's rate. Charged for refusals, the
    // source's budget ran dry after 8 192 and the rest were refused for it,
    // whatever room the shard had by then.
    let per_frame = pc_net::frame::MAX_SUBMITTED_EVENTS as u64;
    let owner = (1..=255u8)
        .map(|n| SigningKey::from_secret_bytes(&[n; 32]).unwrap())
        .find(|k| shard_of(&k.public_key(), SHARDS) == 0)
        .unwrap();
    let mut genesis = genesis();
    genesis.allocations[0].outputs = per_frame as u32;
    let network = genesis.network();
    // The first frame: valid transfers, which fill the fresh shard's bound
    // (nothing finalized yet: the floor's worth).
    let transfers: Vec<Vec<u8>> = (0..per_frame as u16)
        .map(|output| {
            let transfer = pc_codec::TransferBuilder::new()
                .input(Genesis::allocation_out_point(&network, 0, output))
                .output(1, owner.public_key())
                .sign(&network, &owner, &[output as u8; 32])
                .unwrap();
            pc_codec::Encode::to_bytes(&pc_codec::MicroEvent::Transfer(transfer))
        })
        .collect();
    let genesis = Arc::new(genesis);
    let mut node = Node::new(&genesis);
    let now = node.now;
    let conn = ConnId(100);
    let connected = NetEvent::Connected {
        conn,
        remote: SocketAddr::from(([10, 0, 0, 1], 5000)),
        peer_spki: None,
        alpn: ALPN.to_vec(),
    };
    node.core.handle_net(&mut node.io, connected, now).unwrap();
    let frames = 50u64;
    assert!(frames * per_frame > u64::from(pc_node::SUBMIT_EVENTS_PER_S));
    for request in 0..frames {
        let events = if request == 0 {
            transfers.clone()
        } else {
            (0..per_frame)
                .map(|i| (request * per_frame + i).to_le_bytes().to_vec())
                .collect()
        };
        let submit = NetEvent::Frame {
            conn,
            message: NetMessage::SubmitMicroEvents {
                request,
                shard: 0,
                events,
            },
            bytes: 40,
        };
        node.core.handle_net(&mut node.io, submit, now).unwrap();
    }
    let (mut passed, mut for_capacity, mut for_source, mut receipts) = (0u64, 0u64, 0u64, 0u64);
    for (_, message) in std::mem::take(&mut node.io.frames) {
        let NetMessage::Receipt { results, .. } = message else {
            continue;
        };
        receipts += 1;
        for receipt in results {
            match receipt.outcome {
                EventOutcome::Rejected {
                    reason: RejectReason::Overloaded,
                    detail,
                } => {
                    if detail.contains("per second from") {
                        for_source += 1;
                    } else {
                        for_capacity += 1;
                    }
                }
                // Past admission: the transfers are taken, the junk bytes
                // (should the bound ever reach them) do not decode.
                EventOutcome::Accepted
                | EventOutcome::Rejected {
                    reason: RejectReason::Malformed,
                    ..
                } => passed += 1,
                other => panic!("unexpected outcome {other:?}"),
            }
        }
    }
    assert_eq!(receipts, frames, "a receipt per submission");
    assert!(passed > 0, "the bound took some");
    assert_eq!(passed + for_capacity + for_source, frames * per_frame);
    assert_eq!(
        for_source, 0,
        "{passed} passed admission, {for_capacity} were refused for capacity"
    );
}
