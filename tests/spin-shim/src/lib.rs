//! Test-only adapter composed in front of the gateway's Spin component for `wasmtime serve`:
//! Spin's `default` key-value store is a directory preopened at `/kv` (one file per key, so it
//! persists across requests and instances as Spin's own store does), Spin variables map to
//! `wasi:config` (`-Sconfig-var=name=value`).
#![allow(unsafe_code)] // wit-bindgen's generated export glue

wit_bindgen::generate!({ world: "shim", path: "wit", generate_all });

use std::path::PathBuf;

use exports::fermyon::spin::key_value::{self as spin_kv, Error as KvError};
use exports::fermyon::spin::variables::{self as spin_vars, Error as VarError};
use wasi::config::store as config;

/// Where `scripts/run-local` preopens the store's directory.
const ROOT: &str = "/kv";

struct Shim;

pub struct Store;

/// A key's file: its bytes hex-encoded, so any key is a safe file name.
fn path(key: &str) -> PathBuf {
    let name: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    PathBuf::from(ROOT).join(name)
}

fn io_error(e: std::io::Error) -> KvError {
    KvError::Other(e.to_string())
}

impl spin_kv::GuestStore for Store {
    fn open(label: String) -> Result<spin_kv::Store, KvError> {
        if label != "default" {
            return Err(KvError::NoSuchStore);
        }
        Ok(spin_kv::Store::new(Store))
    }

    fn get(&self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        match std::fs::read(path(&key)) {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        // Written aside, then renamed: a concurrent reader sees the old value or the new one.
        let target = path(&key);
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let partial = target.with_extension(format!("partial-{stamp}"));
        std::fs::write(&partial, value).map_err(io_error)?;
        std::fs::rename(&partial, &target).map_err(io_error)
    }

    fn delete(&self, key: String) -> Result<(), KvError> {
        match std::fs::remove_file(path(&key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(e)),
            _ => Ok(()),
        }
    }

    fn exists(&self, key: String) -> Result<bool, KvError> {
        Ok(path(&key).exists())
    }

    fn get_keys(&self) -> Result<Vec<String>, KvError> {
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(ROOT).map_err(io_error)? {
            let name = entry.map_err(io_error)?.file_name().to_string_lossy().into_owned();
            let bytes: Option<Vec<u8>> = (0..name.len())
                .step_by(2)
                .map(|i| name.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                .collect();
            if let Some(key) = bytes.and_then(|b| String::from_utf8(b).ok()) {
                keys.push(key);
            }
        }
        Ok(keys)
    }
}

impl spin_kv::Guest for Shim {
    type Store = Store;
}

impl spin_vars::Guest for Shim {
    fn get(name: String) -> Result<String, VarError> {
        match config::get(&name) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(VarError::Undefined(name)),
            Err(e) => Err(VarError::Provider(format!("{e:?}"))),
        }
    }
}

export!(Shim);
