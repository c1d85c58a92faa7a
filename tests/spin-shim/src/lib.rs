//! Test-only adapter composed in front of the gateway's Spin component for `wasmtime serve`:
//! Spin's `default` key-value store is a directory preopened at `/kv` (one file per key, so it
//! persists across requests and instances as Spin's own store does), served both as Spin 2.0
//! key-value and as `wasi:keyvalue` with atomics (compare-and-swap under a per-key lock file, so
//! concurrent instances see one order of swaps); Spin variables are files in a directory
//! preopened at `/vars` (one file per variable, so secrets never show on a command line), else
//! `wasi:config` (`-Sconfig-var=name=value`).
#![allow(unsafe_code)] // wit-bindgen's generated export glue

wit_bindgen::generate!({ world: "shim", path: "wit", generate_all });

use std::path::PathBuf;

use exports::fermyon::spin::key_value::{self as spin_kv, Error as KvError};
use exports::fermyon::spin::variables::{self as spin_vars, Error as VarError};
use exports::wasi::keyvalue::atomics::{self as wasi_atomics, CasError};
use exports::wasi::keyvalue::store::{self as wasi_kv, Error as WasiKvError};
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

fn read(key: &str) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path(key)) {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write(key: &str, value: &[u8]) -> std::io::Result<()> {
    // Written aside, then renamed: a concurrent reader sees the old value or the new one.
    let target = path(key);
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let partial = target.with_extension(format!("partial-{stamp}"));
    std::fs::write(&partial, value)?;
    std::fs::rename(&partial, &target)
}

fn remove(key: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path(key)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A key's lock, held while an atomic operation reads and writes it: a file created exclusively,
/// removed on drop. A lock older than a second is a crashed holder's, and is broken.
struct KeyLock(PathBuf);

impl KeyLock {
    fn take(key: &str) -> std::io::Result<KeyLock> {
        let lock = path(key).with_extension("lock");
        loop {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&lock) {
                Ok(_) => return Ok(KeyLock(lock)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(&lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > std::time::Duration::from_secs(1));
                    if stale {
                        let _ = std::fs::remove_file(&lock);
                    } else {
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn wasi_error(e: std::io::Error) -> WasiKvError {
    WasiKvError::Other(e.to_string())
}

impl spin_kv::GuestStore for Store {
    fn open(label: String) -> Result<spin_kv::Store, KvError> {
        if label != "default" {
            return Err(KvError::NoSuchStore);
        }
        Ok(spin_kv::Store::new(Store))
    }

    fn get(&self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        read(&key).map_err(io_error)
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        write(&key, &value).map_err(io_error)
    }

    fn delete(&self, key: String) -> Result<(), KvError> {
        remove(&key).map_err(io_error)
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

/// The same `default` store as `wasi:keyvalue`.
pub struct Bucket;

impl wasi_kv::GuestBucket for Bucket {
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, WasiKvError> {
        read(&key).map_err(wasi_error)
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), WasiKvError> {
        write(&key, &value).map_err(wasi_error)
    }

    fn delete(&self, key: String) -> Result<(), WasiKvError> {
        remove(&key).map_err(wasi_error)
    }

    fn exists(&self, key: String) -> Result<bool, WasiKvError> {
        Ok(path(&key).exists())
    }

    fn list_keys(&self, _cursor: Option<String>) -> Result<wasi_kv::KeyResponse, WasiKvError> {
        let keys =
            <Store as spin_kv::GuestStore>::get_keys(&Store).map_err(|e| WasiKvError::Other(format!("{e:?}")))?;
        Ok(wasi_kv::KeyResponse { keys, cursor: None })
    }
}

impl wasi_kv::Guest for Shim {
    type Bucket = Bucket;

    fn open(identifier: String) -> Result<wasi_kv::Bucket, WasiKvError> {
        if identifier != "default" {
            return Err(WasiKvError::NoSuchStore);
        }
        Ok(wasi_kv::Bucket::new(Bucket))
    }
}

/// A compare-and-swap in progress: the key and the value it was read with.
pub struct Cas {
    key: String,
    seen: Option<Vec<u8>>,
}

impl wasi_atomics::GuestCas for Cas {
    fn new(_bucket: wasi_kv::BucketBorrow<'_>, key: String) -> Result<wasi_atomics::Cas, WasiKvError> {
        let seen = read(&key).map_err(wasi_error)?;
        Ok(wasi_atomics::Cas::new(Cas { key, seen }))
    }

    fn current(&self) -> Result<Option<Vec<u8>>, WasiKvError> {
        Ok(self.seen.clone())
    }
}

impl wasi_atomics::Guest for Shim {
    type Cas = Cas;

    fn increment(_bucket: wasi_kv::BucketBorrow<'_>, key: String, delta: i64) -> Result<i64, WasiKvError> {
        let _lock = KeyLock::take(&key).map_err(wasi_error)?;
        let current = read(&key).map_err(wasi_error)?;
        let value = current
            .and_then(|bytes| String::from_utf8(bytes).ok()?.trim().parse::<i64>().ok())
            .unwrap_or(0)
            .saturating_add(delta);
        write(&key, value.to_string().as_bytes()).map_err(wasi_error)?;
        Ok(value)
    }

    fn swap(cas: wasi_atomics::Cas, value: Vec<u8>) -> Result<(), CasError> {
        let Cas { key, seen } = cas.into_inner();
        let lock = KeyLock::take(&key).map_err(|e| CasError::StoreError(wasi_error(e)))?;
        let now = read(&key).map_err(|e| CasError::StoreError(wasi_error(e)))?;
        // As Spin's own stores do, a swap from "absent" is an unconditional write: only a present
        // value is compared (the gateway creates limiter states with `increment` first).
        if seen.is_some() && now != seen {
            drop(lock);
            return Err(CasError::CasFailed(wasi_atomics::Cas::new(Cas { key, seen: now })));
        }
        write(&key, &value).map_err(|e| CasError::StoreError(wasi_error(e)))
    }
}

/// Where `scripts/run-local` preopens the variables' directory.
const VARS: &str = "/vars";

impl spin_vars::Guest for Shim {
    fn get(name: String) -> Result<String, VarError> {
        // Spin's variable names are lowercase letters, digits and `_`: safe as file names.
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            match std::fs::read_to_string(PathBuf::from(VARS).join(&name)) {
                Ok(value) => return Ok(value),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(VarError::Provider(e.to_string())),
            }
        }
        match config::get(&name) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(VarError::Undefined(name)),
            Err(e) => Err(VarError::Provider(format!("{e:?}"))),
        }
    }
}

export!(Shim);
