//! `mcpsoc token`: make stream tokens and the configuration entries that grant them.

use std::io::{Read, Write};

use rand::RngCore;

use crate::auth::hash_token;
use crate::cli::TokenCommand;

/// Runs `mcpsoc token`.
pub fn run(command: &TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::New { name, role, out } => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let token = format!("mst_{}", hex::encode(bytes));
            let entry = format!(
                "[[<role>.stream.subscribers]]\nname = {name:?}\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n",
                hash_token(&token)
            );
            match out {
                Some(path) => {
                    write_private(path, &token)?;
                    println!("# token written to {}\n{entry}", path.display());
                }
                None => println!("token: {token}\n\n{entry}"),
            }
            Ok(())
        }
        TokenCommand::Hash => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            println!("{}", hash_token(text.lines().next().unwrap_or("").trim()));
            Ok(())
        }
    }
}

fn write_private(path: &std::path::Path, token: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot create {}: {e} (refusing to overwrite a token)",
            path.display()
        )
    })?;
    writeln!(file, "{token}")?;
    Ok(())
}
