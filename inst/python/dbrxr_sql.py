"""dbrxr's SQL target: Spark SQL for the DBI backend (R/dbi.R).

`handle(req)` answers one request of the R side (`remote_target(conn, "sql",
req)`): statements run on the context's Spark session (on the local cluster,
Unity Catalog names map to its local databases through dbrxr_spark), result
sets become R data frames with the type mapping of dbx_read_table() (Arrow
buffers to R vectors, never pandas), results fetched in chunks stay in a
cursor of this context, and the catalog is listed (catalogs, schemas, tables,
columns). Spark SQL errors become target errors of class "sql" carrying
Spark's error class, SQLSTATE, message and position.
"""

import collections
import re
import uuid

import dbrxr_spark as spark

# Cursors of dbSendQuery(): id -> {"table": Arrow table, "pos": rows fetched}.
# The oldest are dropped beyond this many (a result R forgot to clear).
_CURSORS = collections.OrderedDict()
_MAX_CURSORS = 32


def handle(req):
    op = req.get("op")
    fn = _OPS.get(op)
    if fn is None:
        raise _error("input", "Unknown SQL operation %r." % (op,))
    try:
        return fn(req)
    except Exception as e:
        if hasattr(e, "getErrorClass"):
            raise spark.sql_error(e, req.get("sql"))
        raise


def _error(cls, message, **fields):
    import dbrxr_bootstrap as boot
    return boot.TargetError(cls, message, **fields)


# ---- statements -------------------------------------------------------------------

def _session():
    return spark.session()


def _run(sql):
    """One statement on the session, as written (the cluster's catalogs take
    catalog.schema.table names)."""
    return _session().sql(sql)


_INSERT = re.compile(r"^\s*INSERT\s+(INTO|OVERWRITE)\s+(?:TABLE\s+)?"
                     r"((?:`(?:[^`]|``)*`|[\w]+)(?:\s*\.\s*(?:`(?:[^`]|``)*`|[\w]+))*)", re.I)


def _execute(sql):
    """(DataFrame or None, rows affected or -1). Delta (Databricks) reports
    num_affected_rows; for other tables an INSERT is counted before and after."""
    m = _INSERT.match(sql)
    before = None
    if m and m.group(1).upper() == "INTO":
        before = _count(m.group(2))
    df = _run(sql)
    cols = df.columns
    if "num_affected_rows" in cols:
        rows = df.select("num_affected_rows").collect()
        return None, int(sum(r[0] or 0 for r in rows))
    if m and not cols:
        after = _count(m.group(2))
        if after is not None:
            return None, after - (before or 0)
    if not cols:
        return None, 0
    return df, -1


def _count(name):
    try:
        return _run("SELECT COUNT(*) FROM %s" % name).collect()[0][0]
    except Exception:
        return None


def _execute_all(req, collect=True):
    """The request's statements (one, or one per row of bound parameters)
    in order: (Arrow table of all their rows or None, result types, rows
    affected summed). With "empty" (zero rows bound) only the result's
    columns are kept."""
    import pyarrow as pa
    sql = req["sql"]
    tables, types, affected = [], [], 0
    for stmt in (sql if isinstance(sql, list) else [sql]):
        try:
            df, n = _execute(stmt)
        except Exception as e:
            if hasattr(e, "getErrorClass"):
                raise spark.sql_error(e, stmt)
            raise
        if df is None:
            affected += max(n, 0) if n is not None else 0
            continue
        if collect:
            tables.append(_collect(df))
            types = types or _types(df)
    if not tables:
        return None, [], affected
    if len(tables) == 1:
        table = tables[0]
    else:
        # One row's literal may be NULL, another's not: all columns nullable.
        schema = pa.schema([f.with_nullable(True) for f in tables[0].schema])
        table = pa.concat_tables([t.cast(schema) for t in tables])
    if req.get("empty"):
        table = table.slice(0, 0)
    return table, types, 0


def _query(req):
    """Statements and all their rows: {"df", "types", "rows_affected", "has_result"}."""
    table, types, affected = _execute_all(req)
    if table is None:
        return {"df": None, "types": [], "rows_affected": affected, "has_result": False}
    return {"df": _to_r(table, 0, table.num_rows, req.get("bigint")), "types": types,
            "rows_affected": affected, "has_result": True}


def _exec(req):
    _, _, affected = _execute_all(req, collect=False)
    return {"rows_affected": affected}


def _send(req):
    """dbSendQuery(): run the statements, keep their rows in a cursor."""
    table, types, affected = _execute_all(req)
    if table is None:
        return {"id": None, "rows_affected": affected, "has_result": False,
                "names": [], "types": [], "rows": 0, "df": None}
    cid = uuid.uuid4().hex
    _CURSORS[cid] = {"table": table, "pos": 0}
    while len(_CURSORS) > _MAX_CURSORS:
        _CURSORS.popitem(last=False)
    return {"id": cid, "rows_affected": affected, "has_result": True,
            "names": list(table.schema.names), "types": types, "rows": table.num_rows,
            "df": _to_r(table, 0, 0, req.get("bigint"))}


def _fetch(req):
    """The next `n` rows of a cursor (all that are left when n < 0)."""
    cur = _CURSORS.get(req["id"])
    if cur is None:
        raise _error("cursor", "The result set was cleared or expired on the cluster "
                     "(each context keeps the last %d); run the query again." % _MAX_CURSORS)
    _CURSORS.move_to_end(req["id"])
    table, pos = cur["table"], cur["pos"]
    n = int(req.get("n", -1))
    end = table.num_rows if n < 0 else min(table.num_rows, pos + n)
    cur["pos"] = end
    return {"df": _to_r(table, pos, end, req.get("bigint")), "done": end >= table.num_rows, "pos": end}


def _clear(req):
    return _CURSORS.pop(req["id"], None) is not None


# ---- results as R data frames -----------------------------------------------------

def _collect(df):
    """All rows as one Arrow table; columns R has no vector for (arrays, maps,
    structs, intervals) as JSON text."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    plain = (T.NumericType, T.StringType, T.BooleanType, T.DateType, T.TimestampType,
             T.BinaryType, T.NullType)
    try:
        plain = plain + (T.TimestampNTZType,)
    except AttributeError:
        pass
    if not all(isinstance(f.dataType, plain) for f in df.schema.fields):
        cols = []
        for f in df.schema.fields:
            c = F.col("`%s`" % f.name.replace("`", "``"))
            if isinstance(f.dataType, (T.ArrayType, T.MapType, T.StructType)):
                c = F.to_json(c)
            elif not isinstance(f.dataType, plain):
                c = c.cast("string")
            cols.append(c.alias(f.name))
        df = df.select(*cols)
    return spark._collect_arrow(df)


def _types(df):
    return [f.dataType.simpleString() for f in df.schema.fields]


def _to_r(table, start, end, bigint=None):
    """Rows [start, end) of an Arrow table as an R data frame (columns by
    dbrxr_spark's Arrow -> R conversion; binary as a list of raw vectors).
    bigint columns as `bigint` says (dbConnect()'s option: "integer64",
    "double", "integer" or "character"); the columns whose values did not fit
    their R type are named in the attribute "dbrxr_inexact"."""
    import pyarrow as pa
    import rpy2.rinterface as ri
    from rpy2.rinterface_lib import openrlib
    part = table.slice(start, end - start)
    spark._r_env()  # R started before any R vector is made
    with openrlib.rlock:
        cols = []
        spark.int64_mode(bigint)
        try:
            for i in range(part.num_columns):
                col = part.column(i)
                spark._INT64["column"] = part.schema.names[i]
                if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
                    cols.append(ri.ListSexpVector([ri.NULL if v is None else ri.ByteSexpVector(v)
                                                   for v in col.to_pylist()]))
                else:
                    cols.append(spark.arrow_column_to_r(col))
        finally:
            spark._INT64["as"] = "double"
        out = spark._r_call("as_df", ri.ListSexpVector(cols),
                            ri.StrSexpVector(list(part.schema.names)),
                            ri.IntSexpVector([part.num_rows]))
        big = list(spark._INT64["inexact"])
        if bigint == "integer" and big:
            out.do_slot_assign("dbrxr_na_integer", ri.StrSexpVector(big))
            big = []
        lost = ["%s (bigint)" % c for c in big] + \
               ["%s (decimal)" % c for c in spark._INT64["decimal_inexact"]]
        if lost:
            out.do_slot_assign("dbrxr_inexact", ri.StrSexpVector(lost))
        return out


# ---- the catalog --------------------------------------------------------------------

def quote(parts):
    return ".".join("`%s`" % str(p).replace("`", "``") for p in parts)


def _catalogs(req):
    return sorted(r[0] for r in _run("SHOW CATALOGS").collect() if r[0] != "spark_catalog")


def _schemas(req):
    catalog = req.get("catalog")
    sql = "SHOW SCHEMAS" if catalog is None else "SHOW SCHEMAS IN %s" % quote([catalog])
    return sorted(r[0] for r in _run(sql).collect())


def _tables(req):
    """Tables and views of a schema (the current one when none is named):
    {"name": [...], "type": ["table"|"view", ...]}."""
    parts = [p for p in (req.get("catalog"), req.get("schema")) if p is not None]
    if parts and len(parts) == 1 and req.get("catalog") is not None:
        raise _error("input", "A schema is needed to list the tables of catalog %s." % parts[0])
    # SHOW TABLES, not spark.catalog.listTables(): with no name, that lists
    # the session catalog's `default` database, not the current catalog's
    # schema. Temporary views are listed (isTemporary) only for the current schema.
    if parts:
        db = quote(parts)
        if not _session().catalog.databaseExists(db):
            return {"name": [], "type": []}
        rows = [r for r in _run("SHOW TABLES IN %s" % db).collect() if not r.isTemporary]
    else:
        rows = _run("SHOW TABLES").collect()
    rows = sorted(rows, key=lambda r: r.tableName)
    return {"name": [r.tableName for r in rows],
            "type": ["view" if r.isTemporary else "table" for r in rows]}


def _columns(req):
    """Columns of a table: {"name": [...], "type": [...]} (Spark types)."""
    df = _run("SELECT * FROM %s LIMIT 0" % quote(req["name"]))
    return {"name": list(df.columns), "type": _types(df)}


def _exists(req):
    name = quote(req["name"])
    try:
        return bool(_session().catalog.tableExists(name))
    except Exception:
        return False


def _preview(req):
    """The first rows of a table (the connections pane)."""
    df = _run("SELECT * FROM %s LIMIT %d" % (quote(req["name"]), int(req.get("n", 1000))))
    table = _collect(df)
    return _to_r(table, 0, table.num_rows)


_OPS = {"query": _query, "execute": _exec, "send": _send, "fetch": _fetch, "clear": _clear,
        "catalogs": _catalogs, "schemas": _schemas, "tables": _tables, "columns": _columns,
        "exists": _exists, "preview": _preview}
