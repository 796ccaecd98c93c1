"""dbrxr platform contract: the only shipped code that knows where it runs.

Shipped code (every other module of inst/python and inst/remote) asks this
module for what differs between a Databricks cluster and dbrxr's local
cluster, and never looks for itself: no `__main__` inspection, no import of
the local worker, no DBRXR_LOCAL_* variable anywhere else (a test scans
inst/ for them).

On Databricks every function is the identity or the runtime's own object.
The local cluster's worker *installs* its implementation when it starts: it
puts a module named `dbrxr_local_platform` into sys.modules before any
command runs, with functions of the same names as those below. This module
reads it once, at import; a function the worker does not provide keeps its
Databricks behaviour.
"""

import sys

# Installed by the local cluster's worker at start; absent on Databricks.
_local = sys.modules.get("dbrxr_local_platform")


def _provided(name):
    return getattr(_local, name, None) if _local is not None else None


def spark():
    """The cluster's SparkSession: the runtime's own on Databricks; on the
    local cluster the context's session (started on first use)."""
    impl = _provided("spark")
    if impl is not None:
        return impl()
    from pyspark.sql import SparkSession
    return SparkSession.builder.getOrCreate()


def file_path(path):
    """The file a DBFS or volume path names in this process: dbfs:/x is
    /dbfs/x (the FUSE mount of DBFS), /dbfs/... and /Volumes/... paths are
    themselves. So they are on the local cluster, whose processes have the
    same mounts; where its machine refused them, its implementation finds
    the files in the cluster's store."""
    if path.startswith("dbfs:/"):
        path = "/dbfs/" + path[len("dbfs:/"):].lstrip("/")
    impl = _provided("file_path")
    return impl(path) if impl is not None else path


def spark_path(path):
    """The URI Spark reads a file by: on Databricks /dbfs/x is dbfs:/x (Spark
    reads DBFS through its own filesystem, on every node), /Volumes/...
    is itself, any other path a local file. So it is on the local cluster,
    whose Spark has a dbfs: filesystem of its own."""
    impl = _provided("spark_path")
    if impl is not None:
        return impl(path)
    if path.startswith("/dbfs/"):
        return "dbfs:/" + path[len("/dbfs/"):]
    if path.startswith("/Volumes/"):
        return path
    return "file://" + path
