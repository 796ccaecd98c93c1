//! The local cluster's Unity Catalog for Spark: Java sources of a Spark
//! catalog plugin (`dbrxr.LocalCatalog`, one per catalog: `main`,
//! `hive_metastore`, those made with CREATE CATALOG) and of the SQL
//! extension that knows `CREATE CATALOG` / `USE CATALOG`, and the `dbfs:/`
//! file system (`dbrxr.DbfsFileSystem`). They are written
//! beside `worker.py`; the worker compiles them against its own PySpark's
//! jars on first use (cached per machine) and points every Spark session of
//! its process at them, so `catalog.schema.table` works everywhere Spark
//! takes a name, without rewriting SQL text. See spark_catalog/*.java.

use std::path::Path;

use crate::error::Result;

use super::util::local_error;

const SOURCES: &[(&str, &str)] = &[
    ("LocalCatalog.java", include_str!("spark_catalog/LocalCatalog.java")),
    ("LocalTable.java", include_str!("spark_catalog/LocalTable.java")),
    ("StagedLocalTable.java", include_str!("spark_catalog/StagedLocalTable.java")),
    ("StagingWriteBuilder.java", include_str!("spark_catalog/StagingWriteBuilder.java")),
    ("Dirs.java", include_str!("spark_catalog/Dirs.java")),
    ("Filters.java", include_str!("spark_catalog/Filters.java")),
    ("LocalExtensions.java", include_str!("spark_catalog/LocalExtensions.java")),
    ("DbfsFileSystem.java", include_str!("spark_catalog/DbfsFileSystem.java")),
];

/// Write the sources to `<state_dir>/spark_catalog/`, where worker.py finds them.
pub fn write_sources(state_dir: &Path) -> Result<()> {
    let dir = state_dir.join("spark_catalog");
    std::fs::create_dir_all(&dir)
        .map_err(|e| local_error(format!("could not create {}: {e}", dir.display())))?;
    for (name, text) in SOURCES {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| local_error(format!("could not write {}: {e}", path.display())))?;
    }
    Ok(())
}
