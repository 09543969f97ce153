//! `phantom-miner`: the seed's name for the miner role. It runs
//! `phantom-engine mine` from the same directory with the same arguments,
//! so there is one implementation of the miner.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let engine = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("phantom-engine")));
    let Some(engine) = engine.filter(|path| path.exists()) else {
        eprintln!("phantom-miner: no phantom-engine binary beside this one");
        return ExitCode::from(2);
    };
    match Command::new(&engine)
        .arg("mine")
        .args(std::env::args_os().skip(1))
        .status()
    {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(error) => {
            eprintln!("phantom-miner: {}: {error}", engine.display());
            ExitCode::from(2)
        }
    }
}
