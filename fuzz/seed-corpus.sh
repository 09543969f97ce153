#!/usr/bin/env bash
# Writes one small valid encoding of each decodable type into
# corpus/<target>/seed-*, the corpus directories `cargo fuzz run` reads, so
# every target starts past the fixed-size fields instead of at zero bytes.
# The corpus is generated, never committed (the repository ignores it).
# Field layouts: codec/src/types.rs, merkle.rs and genesis.rs.
set -euo pipefail
cd "$(dirname "$0")"

# zeros N: N zero bytes, as hex.
zeros() { printf '%0*d' $(( $1 * 2 )) 0; }

# seed TARGET NAME HEX...: writes the concatenated hex as a binary file.
seed() {
    local target=$1 name=$2
    shift 2
    mkdir -p "corpus/$target"
    printf '%s' "$@" | xxd -r -p > "corpus/$target/seed-$name"
}

# The public key of BIP-340 test vector 0: a valid x-only key, so a genesis
# built on it passes validation.
key=f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9
signature=$(zeros 64)

parent_ref="$(zeros 32)03$(zeros 8)$(zeros 8)"
out_point="$(zeros 32)0100"
tx_out="00e1f50500000000$key"
payout_leaf="${key}00e1f50500000000"

# version, network, shard, epoch, creator, seq, birth round, parents,
# payload root, payload count, payload bytes.
header_no_parents="00$(zeros 8)0000$(zeros 4)00$(zeros 8)$(zeros 8)00$(zeros 32)0000$(zeros 4)"
header_one_parent="00$(zeros 8)0100$(zeros 4)02$(zeros 8)0500000000000000""01${parent_ref}$(zeros 32)0100$(zeros 4)"

mint="01$(zeros 32)${key}0700000000000000"
transfer="0001${out_point}01${tx_out}${key}${signature}"
evidence="02${header_no_parents}${signature}${header_no_parents}${signature}"
proof_single="0000000000000000010000000000000000"
# index 2 of 5 leaves: siblings at widths 5, 3 and 2.
proof_three="0200000000000000050000000000000003$(zeros 32)$(zeros 32)$(zeros 32)"
claim="030100000000000000${payout_leaf}${proof_single}${key}${signature}"

checkpoint="0000$(zeros 8)$(zeros 32)$(zeros 32)"

# ConsensusParams::v0(k = 1, shards = 1), one validator on seat 0 of shard 0,
# one allocation of one output of 1 PC.
params="01""0100""0a000000""1a000000""320a1414""0d000000""14000000""08"
params+="50c3000000000000""a086010000000000""400d030000000000"
params+="8096980000000000""00e1f50500000000"
# validator: key, bond, one seat (shard 0, seat 0).
validator="${key}$(zeros 8)01""0000""00"
# allocation: owner, amount, outputs.
allocation="${key}""00e1f50500000000""01000000"
genesis="00${params}$(zeros 32)01${validator}01${allocation}"

seed decode_small parent_ref "$parent_ref"
seed decode_small out_point "$out_point"
seed decode_small tx_out "$tx_out"

seed decode_header header "$header_no_parents"
seed decode_header signed_header "$header_no_parents" "$signature"
seed decode_header signed_header_parent "$header_one_parent" "$signature"

seed decode_anchor empty_payload "$header_no_parents" "$signature" 00
seed decode_anchor one_mint "$header_one_parent" "$signature" 01 "$mint"

seed decode_micro_event transfer "$transfer"
seed decode_micro_event mint "$mint"
seed decode_micro_event evidence "$evidence"
seed decode_micro_event claim "$claim"
seed decode_micro_event payload "02" "$mint" "$transfer"

seed decode_checkpoint checkpoint "$checkpoint"
seed decode_checkpoint checkpoint_sig "$checkpoint" 00 "$signature"
seed decode_checkpoint certified "$checkpoint" 0100000000000000 01 "$signature"
seed decode_checkpoint round_finalized "0900000000000000" "$(zeros 8)" "0300000000000000" "$(zeros 32)" "$(zeros 32)"

seed decode_merkle_proof payout_leaf "$payout_leaf"
seed decode_merkle_proof proof_single "$proof_single"
seed decode_merkle_proof proof_three "$proof_three"

seed decode_genesis genesis "$genesis"

echo "seeds written under $(pwd)/corpus/"
