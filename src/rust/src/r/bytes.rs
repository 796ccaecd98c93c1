//! Bindings for a byte helper R lacks: SHA-256 (content addresses).

use extendr_api::prelude::*;
use sha2::{Digest, Sha256};

use super::convert::guard;
use crate::error::Error;

fn raw_slice(x: &Robj) -> crate::Result<&[u8]> {
    x.as_raw_slice().ok_or_else(|| Error::input("expected a raw vector"))
}

/// Hex SHA-256 of a raw vector.
/// @noRd
#[extendr]
fn rust_sha256(x: Robj) -> Robj {
    guard(|| Ok(Robj::from(hex::encode(Sha256::digest(raw_slice(&x)?)))))
}

/// Hex SHA-256 of a file, streamed.
/// @noRd
#[extendr]
fn rust_sha256_file(path: &str) -> Robj {
    guard(|| {
        use std::io::Read;
        let mut f = std::fs::File::open(path)
            .map_err(|e| Error::io(format!("cannot read {path}: {e}")))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(format!("cannot read {path}: {e}")))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(Robj::from(hex::encode(h.finalize())))
    })
}

extendr_module! {
    mod bytes;
    fn rust_sha256;
    fn rust_sha256_file;
}
