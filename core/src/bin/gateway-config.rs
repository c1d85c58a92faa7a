//! Configuration helper for operators and scripts:
//!   gateway-config check FILE      validate a document and its Cedar policies (exit 1 naming the field)
//!   gateway-config check FILE --compiled OUT  and write its compiled policies to OUT, to store under
//!                                  `config/compiled` beside the document (as a push through the admin API does)
//!   gateway-config hash-key KEY    the SHA-256 to store in `keys[].sha256`
//!   gateway-config schema          print the JSON Schema of the document
//!   gateway-config cedar-schema FILE  print the Cedar schema policies are checked against

use std::process::ExitCode;

use gateway_core::auth::hash_key;
use gateway_core::config::Config;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["check", file] => check(file, None),
        ["check", file, "--compiled", out] => check(file, Some(out)),
        ["hash-key", key] => {
            println!("{}", hash_key(key));
            ExitCode::SUCCESS
        }
        ["cedar-schema", file] => match std::fs::read(file).map_err(|e| e.to_string()).and_then(|bytes| {
            let config = Config::from_json(&bytes).map_err(|e| e.to_string())?;
            gateway_core::policy::schema_text(&config).map_err(|e| e.to_string())
        }) {
            Ok(schema) => {
                println!("{schema}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{file}: {e}");
                ExitCode::FAILURE
            }
        },
        ["schema"] => {
            println!("{}", serde_json::to_string_pretty(&Config::json_schema()).unwrap_or_default());
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: gateway-config check FILE [--compiled OUT] | hash-key KEY | schema | cedar-schema FILE");
            ExitCode::from(2)
        }
    }
}

/// Accepts the document in `file` as a push would, and writes its compiled policies to `compiled`.
fn check(file: &str, compiled: Option<&str>) -> ExitCode {
    let accepted = std::fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|bytes| gateway_core::policy::accept(&bytes).map_err(|e| e.to_string()));
    let config = match accepted {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(out) = compiled {
        if let Err(e) = std::fs::write(out, gateway_core::policy::compile(&config)) {
            eprintln!("{out}: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("{file}: valid");
    ExitCode::SUCCESS
}
