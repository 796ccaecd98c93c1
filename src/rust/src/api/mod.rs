//! Typed wrappers of the Databricks REST endpoints the client uses.
