//! The copies a large request made before leaving R, made plain memory
//! copies: R's `serialize()` written straight into Rust memory (not into an
//! R raw vector that grows and is then copied again), and runs of rows of
//! plain columns copied with `memcpy` (R's `x[i]` works element by element).

use std::os::raw::{c_int, c_void};

use extendr_api::prelude::*;
use extendr_ffi::{
    R_NilValue, R_Serialize, R_outpstream_st, R_outpstream_t, R_pstream_format_t, R_xlen_t,
    Rf_allocVector, Rf_protect, Rf_unprotect, DATAPTR, DATAPTR_RO, SET_STRING_ELT, SEXP, SEXPTYPE,
    STRING_ELT, TYPEOF, XLENGTH,
};

use super::convert::guard;
use crate::error::Error;

// In Rinternals.h but not bound by extendr-ffi; SEXP is an opaque pointer.
#[allow(improper_ctypes)]
extern "C" {
    fn ATTRIB(x: SEXP) -> SEXP;
}

unsafe extern "C" fn out_char(stream: R_outpstream_t, c: c_int) {
    let buf = &mut *((*stream).data as *mut Vec<u8>);
    buf.push(c as u8);
}

unsafe extern "C" fn out_bytes(stream: R_outpstream_t, p: *mut c_void, n: c_int) {
    let buf = &mut *((*stream).data as *mut Vec<u8>);
    buf.extend_from_slice(std::slice::from_raw_parts(p as *const u8, n as usize));
}

/// The bytes of `serialize(x, NULL, xdr = FALSE)` (format version 3).
/// Runs on R's thread; R objects can always be serialized.
pub fn serialize_native(x: &Robj) -> Vec<u8> {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    // SAFETY: the stream's data points at `buf`, alive for the whole call;
    // the callbacks only append to it. `x` is protected by its Robj.
    unsafe {
        let mut stream = R_outpstream_st {
            data: &mut buf as *mut Vec<u8> as *mut c_void,
            type_: R_pstream_format_t::R_pstream_binary_format,
            version: 3,
            OutChar: Some(out_char),
            OutBytes: Some(out_bytes),
            OutPersistHookFunc: None,
            OutPersistHookData: R_NilValue,
        };
        R_Serialize(x.get(), &mut stream);
    }
    buf
}

/// serialize(x, NULL, xdr = FALSE), made here (tests compare the two).
/// @noRd
#[extendr]
fn rust_serialize(x: Robj) -> Robj {
    guard(|| Ok(Raw::from_bytes(&serialize_native(&x)).into()))
}

/// `x[from:to]` (1-based, inclusive) for an atomic vector without
/// attributes; NULL for anything else (R then subsets it itself).
/// @noRd
#[extendr]
fn rust_slice_rows(x: Robj, from: f64, to: f64) -> Robj {
    guard(|| {
        // SAFETY: `x` is protected by its Robj; the new vector is protected
        // while it is filled; every read is within [from, to], checked
        // against the length first.
        unsafe {
            let sx = x.get();
            let kind = TYPEOF(sx);
            let width = match kind {
                SEXPTYPE::REALSXP => 8,
                SEXPTYPE::INTSXP | SEXPTYPE::LGLSXP => 4,
                SEXPTYPE::CPLXSXP => 16,
                SEXPTYPE::RAWSXP => 1,
                SEXPTYPE::STRSXP => 0,
                _ => return Ok(Robj::from(())),
            };
            if ATTRIB(sx) != R_NilValue {
                return Ok(Robj::from(()));
            }
            let len = XLENGTH(sx) as f64;
            if !(from >= 1.0 && to >= from - 1.0 && to <= len) || from.fract() != 0.0 || to.fract() != 0.0 {
                return Err(Error::input(format!("rows {from}..{to} are outside 1..{len}")));
            }
            let start = from as usize - 1;
            let n = (to - from + 1.0) as usize;
            let out = Rf_protect(Rf_allocVector(kind, n as R_xlen_t));
            if width == 0 {
                for i in 0..n {
                    SET_STRING_ELT(out, i as R_xlen_t, STRING_ELT(sx, (start + i) as R_xlen_t));
                }
            } else if n > 0 {
                let src = (DATAPTR_RO(sx) as *const u8).add(start * width);
                std::ptr::copy_nonoverlapping(src, DATAPTR(out) as *mut u8, n * width);
            }
            let robj = Robj::from_sexp(out);
            Rf_unprotect(1);
            Ok(robj)
        }
    })
}

extendr_module! {
    mod serialize;
    fn rust_serialize;
    fn rust_slice_rows;
}
