//! extendr bindings: thin functions, no logic. Every export is internal
//! (`@noRd`); the public API is hand-written R. Each returns the tagged list of
//! [`convert::guard`].

use extendr_api::prelude::*;

pub mod bytes;
pub mod connect;
pub mod convert;
pub mod handles;
pub mod jobs;
pub mod local;
pub mod row_names;
pub mod protocol;
pub mod serialize;
pub mod serving;
pub mod sitrep;
pub mod staging;
pub mod testing;
pub mod wait;

extendr_module! {
    mod dbrxr;
    use bytes;
    use connect;
    use jobs;
    use local;
    use row_names;
    use protocol;
    use serialize;
    use serving;
    use sitrep;
    use staging;
    use testing;
    use wait;
}
