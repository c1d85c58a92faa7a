//! Test-only adapter composed in front of the gateway's Spin component for `wasmtime serve`:
//! Spin's `default` key-value store maps to wasmtime's in-memory bucket, Spin variables map to
//! `wasi:config` (`-Sconfig-var=name=value`).
//!
//! wasmtime's `-S` flags split on commas, so a JSON document cannot be preset as it is: values
//! are stored hex-encoded in wasmtime's bucket (`scripts/run-local` encodes the preset config)
//! and decoded here, transparently for the gateway.
#![allow(unsafe_code)] // wit-bindgen's generated export glue

wit_bindgen::generate!({ world: "shim", path: "wit", generate_all });

use exports::fermyon::spin::key_value::{self as spin_kv, Error as KvError};
use exports::fermyon::spin::variables::{self as spin_vars, Error as VarError};
use wasi::config::store as config;
use wasi::keyvalue::store as wasi_kv;

struct Shim;

fn kv_error(e: wasi_kv::Error) -> KvError {
    match e {
        wasi_kv::Error::NoSuchStore => KvError::NoSuchStore,
        wasi_kv::Error::AccessDenied => KvError::AccessDenied,
        wasi_kv::Error::Other(s) => KvError::Other(s),
    }
}

pub struct Store(wasi_kv::Bucket);

impl spin_kv::GuestStore for Store {
    fn open(label: String) -> Result<spin_kv::Store, KvError> {
        if label != "default" {
            return Err(KvError::NoSuchStore);
        }
        Ok(spin_kv::Store::new(Store(wasi_kv::open("").map_err(kv_error)?)))
    }

    fn get(&self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        match self.0.get(&key).map_err(kv_error)? {
            Some(stored) => hex_decode(&stored).map(Some).ok_or_else(|| KvError::Other(format!("`{key}` is not hex"))),
            None => Ok(None),
        }
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        self.0.set(&key, &hex_encode(&value)).map_err(kv_error)
    }

    fn delete(&self, key: String) -> Result<(), KvError> {
        self.0.delete(&key).map_err(kv_error)
    }

    fn exists(&self, key: String) -> Result<bool, KvError> {
        self.0.exists(&key).map_err(kv_error)
    }

    fn get_keys(&self) -> Result<Vec<String>, KvError> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.0.list_keys(cursor).map_err(kv_error)?;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }
}

fn hex_encode(bytes: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]]).collect()
}

fn hex_decode(hex: &[u8]) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    if hex.len() % 2 != 0 {
        return None;
    }
    hex.chunks(2).map(|pair| Some(nibble(*pair.first()?)? << 4 | nibble(*pair.get(1)?)?)).collect()
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
