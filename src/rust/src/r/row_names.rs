//! Names that are row numbers. `predict()` on a data frame names its values
//! after the row names, which R keeps as a deferred conversion of the row
//! numbers (an ALTREP string vector) and turns into strings only when asked.
//! Joining chunked results with `c()` would make those strings (a third of a
//! second per million rows); finding that each chunk's names are still such a
//! deferred conversion of consecutive numbers lets R name the joined result
//! with one deferred conversion of the whole range instead.

use extendr_api::prelude::*;
use extendr_ffi::{
    ALTREP, ALTREP_CLASS, CAR, INTEGER_ELT, PRINTNAME, R_CHAR, R_NaInt, R_altrep_data1, SEXP,
    SEXPTYPE, TYPEOF, XLENGTH,
};

use super::convert::guard;

// In Rinternals.h but not bound by extendr-ffi; SEXP is an opaque pointer.
#[allow(improper_ctypes)]
extern "C" {
    fn ATTRIB(x: SEXP) -> SEXP;
}

/// `c(first, last)` when `x` is a deferred string conversion of the integers
/// `first:last` that has not been expanded yet; otherwise `NULL`.
/// @noRd
#[extendr]
fn rust_deferred_row_range(x: Robj) -> Robj {
    guard(|| {
        // SAFETY: `x` is protected by extendr for the duration of the call,
        // and every access below checks the type it reads first.
        let range = unsafe { deferred_int_range(x.get()) };
        Ok(match range {
            Some((first, last)) => Robj::from(vec![first, last]),
            None => Robj::from(()),
        })
    })
}

/// The layout read here is R's `deferred_string` class (src/main/altclasses.c):
/// data1 is `CONS(arg, info)` until the vector is fully expanded, then `NULL`.
unsafe fn deferred_int_range(x: SEXP) -> Option<(i32, i32)> {
    if TYPEOF(x) != SEXPTYPE::STRSXP || ALTREP(x) == 0 {
        return None;
    }
    // The class object's attributes are list(class symbol, package symbol, type).
    let class_info = ATTRIB(ALTREP_CLASS(x));
    if TYPEOF(class_info) != SEXPTYPE::LISTSXP {
        return None;
    }
    let class_sym = CAR(class_info);
    if TYPEOF(class_sym) != SEXPTYPE::SYMSXP {
        return None;
    }
    let name = std::ffi::CStr::from_ptr(R_CHAR(PRINTNAME(class_sym)));
    if name.to_bytes() != b"deferred_string" {
        return None;
    }
    let state = R_altrep_data1(x);
    if TYPEOF(state) != SEXPTYPE::LISTSXP {
        return None;
    }
    let arg = CAR(state);
    if TYPEOF(arg) != SEXPTYPE::INTSXP {
        return None;
    }
    let n = XLENGTH(arg);
    if n < 1 || n != XLENGTH(x) || n > i32::MAX as isize {
        return None;
    }
    let first = INTEGER_ELT(arg, 0);
    if first == R_NaInt || (first as i64) + (n as i64) - 1 > i32::MAX as i64 {
        return None;
    }
    for i in 1..n {
        if INTEGER_ELT(arg, i) != first + i as i32 {
            return None;
        }
    }
    Some((first, first + (n - 1) as i32))
}

extendr_module! {
    mod row_names;
    fn rust_deferred_row_range;
}
