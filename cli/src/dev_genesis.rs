//! The one dev-genesis writer, of `genesis new` and `devnet`: fresh
//! validator keys (validator `i` holds seat `i` of every shard), fresh
//! funded client keys, both as key files in `keys/`, and `genesis.toml`
//! beside them, read back through the checks `genesis verify` runs.

use std::path::{Path, PathBuf};

use pc_codec::genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisValidator, SeatAssignment,
};
use pc_codec::ids::shard_of;
use pc_codec::SigningKey;
use pc_engine::genesis_file::{self, LoadedGenesis};

use crate::error::CliError;
use crate::key_file;

/// How many funded clients a dev genesis has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevClients {
    /// This many, wherever their keys fall.
    Total(u16),
    /// This many in every shard (keys are drawn until each shard has them).
    PerShard(u16),
}

/// What a dev genesis holds.
#[derive(Debug, Clone, Copy)]
pub struct DevGenesis {
    /// Committee size and shards; the rest of the consensus parameters.
    pub params: ConsensusParams,
    /// Bond of every validator, in units.
    pub bond: u64,
    /// The funded clients.
    pub clients: DevClients,
    /// Genesis outputs of every client.
    pub outputs_per_client: u32,
    /// Units in every genesis output.
    pub units_per_output: u64,
}

/// A dev genesis as written.
#[derive(Debug)]
pub struct WrittenGenesis {
    /// `out/genesis.toml`.
    pub path: PathBuf,
    /// `out/keys`: `validator-NN.key` and `client-NN.key`.
    pub keys_dir: PathBuf,
    /// The genesis, as read back from `path`.
    pub loaded: LoadedGenesis,
    /// The client keys, in the order of their allocations.
    pub clients: Vec<SigningKey>,
}

/// Writes the keys and `genesis.toml` of `spec` into `out`; refuses to
/// overwrite a genesis already there.
pub fn write(out: &Path, spec: &DevGenesis) -> Result<WrittenGenesis, CliError> {
    let keys_dir = out.join("keys");
    std::fs::create_dir_all(&keys_dir)
        .map_err(|e| CliError::io(&keys_dir, "create directory", e))?;
    let path = out.join("genesis.toml");
    if path.exists() {
        return Err(CliError::Usage(format!(
            "{} already exists; refusing to overwrite",
            path.display()
        )));
    }
    let mut rng = rand::rng();
    let params = spec.params;
    let mut validators = Vec::with_capacity(usize::from(params.k));
    for seat in 0..params.k {
        let key = SigningKey::generate(&mut rng);
        let file = keys_dir.join(format!("validator-{seat:02}.key"));
        key_file::write(&file, &key, "validator")?;
        validators.push(GenesisValidator {
            key: key.public_key(),
            bond: spec.bond,
            seats: (0..params.shards)
                .map(|shard| SeatAssignment { shard, seat })
                .collect(),
        });
    }
    let clients = client_keys(&mut rng, spec.clients, params.shards);
    let mut allocations = Vec::with_capacity(clients.len());
    for (index, key) in clients.iter().enumerate() {
        let file = keys_dir.join(format!("client-{index:02}.key"));
        key_file::write(&file, key, "client")?;
        allocations.push(GenesisAllocation {
            owner: key.public_key(),
            amount: spec.units_per_output,
            outputs: spec.outputs_per_client,
        });
    }
    let mut note = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rng, &mut note);
    let genesis = Genesis {
        params,
        note_commitment: *blake3::hash(&note).as_bytes(),
        validators,
        allocations,
    };
    genesis.validate()?;
    std::fs::write(&path, genesis_file::render(&genesis, &note))
        .map_err(|e| CliError::io(&path, "write genesis", e))?;
    let loaded = genesis_file::load(&path)?;
    assert_eq!(
        loaded.genesis, genesis,
        "a written genesis must read back identically"
    );
    Ok(WrittenGenesis {
        path,
        keys_dir,
        loaded,
        clients,
    })
}

/// Fresh client keys: `Total(n)` takes the first `n` drawn,
/// `PerShard(n)` draws until every shard owns `n`.
fn client_keys(
    rng: &mut impl rand::CryptoRng,
    clients: DevClients,
    shards: u16,
) -> Vec<SigningKey> {
    let mut keys = Vec::new();
    let mut by_shard = vec![0u16; usize::from(shards)];
    loop {
        let done = match clients {
            DevClients::Total(count) => keys.len() >= usize::from(count),
            DevClients::PerShard(count) => by_shard.iter().all(|n| *n >= count),
        };
        if done {
            return keys;
        }
        let key = SigningKey::generate(rng);
        let shard = usize::from(shard_of(&key.public_key(), shards));
        if let DevClients::PerShard(count) = clients {
            if by_shard[shard] >= count {
                continue;
            }
        }
        by_shard[shard] += 1;
        keys.push(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_shard_clients_fill_every_shard_and_total_clients_are_counted() {
        let mut rng = rand::rng();
        let keys = client_keys(&mut rng, DevClients::PerShard(2), 3);
        let mut by_shard = [0; 3];
        for key in &keys {
            by_shard[usize::from(shard_of(&key.public_key(), 3))] += 1;
        }
        assert_eq!(by_shard, [2, 2, 2]);
        assert_eq!(client_keys(&mut rng, DevClients::Total(5), 3).len(), 5);
        assert!(client_keys(&mut rng, DevClients::Total(0), 3).is_empty());
    }

    #[test]
    fn a_written_dev_genesis_reads_back_with_its_keys_and_is_never_overwritten() {
        let temp = tempfile::tempdir().unwrap();
        let spec = DevGenesis {
            params: ConsensusParams::v0(3, 2),
            bond: 10,
            clients: DevClients::PerShard(1),
            outputs_per_client: 4,
            units_per_output: 100,
        };
        let written = write(temp.path(), &spec).unwrap();
        let genesis = &written.loaded.genesis;
        assert_eq!(genesis.validators.len(), 3);
        assert!(genesis.validators.iter().all(|v| v.seats.len() == 2));
        assert_eq!(genesis.allocations.len(), written.clients.len());
        for (index, client) in written.clients.iter().enumerate() {
            let file = written.keys_dir.join(format!("client-{index:02}.key"));
            assert_eq!(
                key_file::read(&file).unwrap().public_key(),
                client.public_key()
            );
        }
        assert!(matches!(
            write(temp.path(), &spec),
            Err(CliError::Usage(message)) if message.contains("refusing to overwrite")
        ));
    }
}
