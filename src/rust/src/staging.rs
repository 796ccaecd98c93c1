//! Staging: bytes to and from DBFS or a UC Volume under content hashes.
