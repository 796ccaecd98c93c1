# dbrxr local cluster: one execution context = one process running this file.
#
# Protocol (JSON lines): stdin carries commands {"id", "n", "code", "language":
# "python"|"sql"|"r"} and cancels
# {"cancel": id}; replies go to a private copy of the original stdout as
# {"ready": true, ...} once at start, then {"id", "status": "ok"|"error"|"cancelled",
# "data", "summary", "cause"} (a SQL command's rows in "table": {"data", "schema",
# "truncated"}). fd 1 is pointed at fd 2 so stray C-level output
# cannot corrupt the protocol.
#
# Notebook semantics: common indentation removed, stdout/stderr captured, the
# value of a trailing expression shown as `Out[n]: repr`, exceptions reported
# with a one-line summary and a traceback.
#
# Cancel names the command, so it can never hit the wrong one: a reader thread
# takes stdin; a cancel of a command not started yet drops it, a cancel of the
# running one sends SIGINT to the main thread (KeyboardInterrupt in Python code),
# repeatedly until the command ends, and sets R_interrupts_pending (R run through
# rpy2 does not see Python's handler).
import ast
import ctypes
import io
import json
import linecache
import queue
import os
import signal
import sys
import textwrap
import threading
import time
import traceback

_proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.__stdout__ = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)

# ---- the platform contract's local side -----------------------------------------
# Shipped code asks inst/python/dbrxr_platform.py for what differs from a
# Databricks cluster; that module finds this implementation in sys.modules.
# A function left out keeps the Databricks behaviour (file_path: /dbfs and
# /Volumes are themselves, the mounts this process has), so only what
# differs is here: where Spark reads files, and the store's files for those
# paths when the machine refused the mount namespace.
def _install_platform():
    import types
    mod = types.ModuleType("dbrxr_local_platform")
    root = os.environ.get("DBRXR_LOCAL_FS_ROOT")
    mounted = False
    if root:
        try:
            mounted = os.path.samefile("/dbfs", os.path.join(root, "dbfs"))
        except OSError:
            pass
    if root and not mounted:
        def file_path(path):
            if path == "/dbfs" or path.startswith(("/dbfs/", "/Volumes/")) or path == "/Volumes":
                return os.path.join(root, path.lstrip("/"))
            return path
        mod.file_path = file_path
    # The context's Spark runs here, in local mode: it reads a file of this
    # process (it has no dbfs: filesystem).
    mod.spark_path = lambda path: "file://" + path
    sys.modules["dbrxr_local_platform"] = mod


_install_platform()

_lock = threading.Lock()
# current: id of the running command; cancel_id: the command asked to stop.
# user: the user's code is on the stack (the only place an interrupt may land).
_state = {"current": None, "cancel_id": None, "user": False}
_dropped = set()  # ids cancelled before they started
_queue = queue.Queue()
_r_flag = None  # ctypes int bound to R_interrupts_pending once R is loaded


def _send(obj):
    _proto.write(json.dumps(obj) + "\n")
    _proto.flush()


def _on_sigint(signum, frame):
    # No lock here: the handler may run while this thread holds it.
    current = _state["current"]
    hit = _state["user"] and current is not None and _state["cancel_id"] == current
    if hit:
        raise KeyboardInterrupt()


def _bind_r_flag():
    global _r_flag
    if _r_flag is not None or "rpy2.rinterface_lib.openrlib" not in sys.modules:
        return
    # Not while R starts: an interrupt then cuts its loading of the base
    # package short, and R lacks base functions for good.
    embedded = sys.modules.get("rpy2.rinterface_lib.embedded")
    if embedded is None or not embedded.isready():
        return
    openrlib = sys.modules["rpy2.rinterface_lib.openrlib"]
    candidates = [None]
    r_home = getattr(openrlib, "R_HOME", None)
    if r_home:
        candidates.append(os.path.join(r_home, "lib", "libR.so"))
    for path in candidates:
        try:
            _r_flag = ctypes.c_int.in_dll(ctypes.CDLL(path), "R_interrupts_pending")
            return
        except (OSError, ValueError):
            continue


def _route_r_console():
    # rpy2 sends R's console output to print() (our captured sys.stdout) but
    # warnings/errors to a logger; send those to the captured stderr instead.
    cb = sys.modules.get("rpy2.rinterface_lib.callbacks")
    if cb is not None and getattr(cb, "_dbrxr_routed", False) is False:
        cb.consolewrite_warnerror = lambda s: sys.stderr.write(s)
        cb._dbrxr_routed = True


def _cancel(cid):
    with _lock:
        running = _state["current"] == cid
        if running:
            _state["cancel_id"] = cid
        else:
            _dropped.add(cid)
    if running:
        threading.Thread(target=_interrupt, args=(cid,), daemon=True).start()


def _interrupt(cid):
    # Repeat until the command ends: a signal that lands just before a
    # blocking call (time.sleep) starts is only handled after it returns.
    main = threading.main_thread().ident
    delay = 0.02
    while True:
        with _lock:
            if _state["current"] != cid:
                return
            _bind_r_flag()
            if _r_flag is not None:
                _r_flag.value = 1
        signal.pthread_kill(main, signal.SIGINT)
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _read_stdin():
    for line in sys.stdin.buffer:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "cancel" in msg:
            _cancel(msg["cancel"])
        else:
            _queue.put(msg)
    _queue.put(None)


def _strip_frames(tb, filename):
    # Drop this module's frames so the traceback starts at the user's code.
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    return tb


def _error_result(exc, filename):
    etype = type(exc)
    only = traceback.format_exception_only(etype, exc)
    summary = only[-1].strip() if only else etype.__name__
    frames = []
    if not isinstance(exc, SyntaxError):
        tb = _strip_frames(exc.__traceback__, filename)
        frames = traceback.format_list(traceback.extract_tb(tb))
    header = "-" * 75 + "\n" + etype.__name__.ljust(42) + "Traceback (most recent call last)\n"
    return summary, (header + "".join(frames) + "".join(only)).rstrip("\n")


def _run(globals_, cid, n, code):
    filename = "<command-%d>" % n
    source = textwrap.dedent(code)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    out = io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = out
    result = {"status": "ok"}
    try:
        with _lock:
            _state["current"] = cid
            if _r_flag is not None:
                _r_flag.value = 0  # an interrupt meant for an earlier command
        tree = ast.parse(source, filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        code_obj = compile(tree, filename, "exec")
        last_obj = compile(last, filename, "eval") if last is not None else None
        _state["user"] = True
        exec(code_obj, globals_)
        value = eval(last_obj, globals_) if last_obj is not None else None
        _state["user"] = False
        _route_r_console()
        if value is not None:
            globals_["_"] = value
            out.write("Out[%d]: %r\n" % (n, value))
    except BaseException as exc:  # noqa: B902 - the user's code may raise anything
        _state["user"] = False
        if isinstance(exc, SystemExit):
            result = {"status": "error", "summary": "SystemExit: %s" % (exc.code,),
                      "cause": "The command called exit(); the context keeps running."}
        else:
            summary, cause = _error_result(exc, filename)
            result = {"status": "error", "summary": summary, "cause": cause}
    finally:
        _state["user"] = False
        with _lock:
            if _state["cancel_id"] == cid:
                result = {"status": "cancelled"}
            _state["current"] = None
        sys.stdout, sys.stderr = saved
        _route_r_console()
        _bind_r_flag()
    text = out.getvalue()
    if text.endswith("\n"):
        text = text[:-1]
    result["data"] = text
    return result


# ---- the notebook's `spark` global -------------------------------------------
# As in a Databricks notebook, `spark` is a SparkSession: PySpark in local mode,
# started on first use (it takes seconds, so only commands that touch it pay).
# Tables are parquet directories under the state directory, so they survive
# context restarts; the session's catalog is in memory (no Derby lock shared by
# contexts) and is re-synced from those directories before each use. Unity
# Catalog names map to local databases: main.s.t -> main__s.t,
# hive_metastore.s.t -> s.t (see _local_name()).
_spark = {"session": None}
_spark_lock = threading.Lock()
_CATALOG_SEP = "__"


def _spark_dir():
    root = os.environ.get("DBRXR_LOCAL_FS_ROOT") or os.path.join(os.getcwd(), "dbrxr-state")
    return os.path.join(root, "spark")


def _spark_warehouse():
    return os.path.join(_spark_dir(), "warehouse")


def _spark_session():
    """The context's SparkSession (created on first call)."""
    with _spark_lock:
        if _spark["session"] is None:
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
            from pyspark.sql import SparkSession
            tmp = os.path.join(_spark_dir(), "tmp")
            os.makedirs(_spark_warehouse(), exist_ok=True)
            os.makedirs(tmp, exist_ok=True)
            builder = (SparkSession.builder
                       .master(os.environ.get("DBRXR_SPARK_MASTER", "local[2]"))
                       .appName("dbrxr-local")
                       .config("spark.ui.enabled", "false")
                       .config("spark.ui.showConsoleProgress", "false")
                       # Local mode runs everything in the driver's JVM: 1 GB
                       # (the default) fails to collect a 10-million-row table.
                       .config("spark.driver.memory", os.environ.get("DBRXR_SPARK_MEMORY", "4g"))
                       .config("spark.sql.shuffle.partitions", "2")
                       .config("spark.sql.session.timeZone", "UTC")
                       .config("spark.sql.warehouse.dir", _spark_warehouse())
                       .config("spark.sql.catalogImplementation", "in-memory")
                       # CREATE TABLE without USING makes a data source table
                       # (Databricks: Delta), not a Hive table this catalog lacks.
                       .config("spark.sql.legacy.createHiveTableByDefault", "false")
                       # Dates before 1582 as written (proleptic Gregorian, as R's).
                       .config("spark.sql.parquet.datetimeRebaseModeInRead", "CORRECTED")
                       .config("spark.sql.parquet.datetimeRebaseModeInWrite", "CORRECTED")
                       .config("spark.sql.parquet.int96RebaseModeInRead", "CORRECTED")
                       .config("spark.sql.parquet.int96RebaseModeInWrite", "CORRECTED")
                       .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                       .config("spark.local.dir", tmp)
                       .config("spark.driver.extraJavaOptions", "-Djava.io.tmpdir=" + tmp))
            session = builder.getOrCreate()
            session.sparkContext.setLogLevel("ERROR")
            _spark["session"] = session
        _spark_sync(_spark["session"])
        return _spark["session"]


def _local_name(name):
    """Local Spark name of a Unity Catalog name (one, two or three parts)."""
    parts = name.split(".")
    if len(parts) == 3:
        catalog, schema, table = parts
        if catalog.lower() == "hive_metastore":
            return schema + "." + table
        return catalog + _CATALOG_SEP + schema + "." + table
    return name


def _local_schema(name):
    parts = name.split(".")
    if len(parts) == 2:
        if parts[0].lower() == "hive_metastore":
            return parts[1]
        return parts[0] + _CATALOG_SEP + parts[1]
    return name


_SQL_TOKEN = None
_SCHEMA_WORDS = {"SCHEMA", "DATABASE", "NAMESPACE", "USE"}
_SKIP_WORDS = {"IF", "NOT", "EXISTS"}


def _local_catalogs():
    """Catalogs of the local cluster: main, hive_metastore, and those of
    the schemas created so far (database `c__s` is schema s of catalog c)."""
    names = {"main", "hive_metastore"}
    try:
        for entry in os.listdir(_spark_warehouse()):
            if entry.endswith(".db") and _CATALOG_SEP in entry:
                names.add(entry[:-3].split(_CATALOG_SEP)[0].lower())
    except OSError:
        pass
    return names


def _local_sql(query):
    # Unity Catalog names become local names, quoted (`main`.`s`.`t`) or not,
    # never inside string literals or comments: catalog.schema.table when the
    # catalog exists, and catalog.schema after SCHEMA/DATABASE/NAMESPACE/USE
    # and SHOW TABLES|VIEWS|FUNCTIONS IN|FROM (any catalog: it then exists).
    import re
    global _SQL_TOKEN
    if _SQL_TOKEN is None:
        _SQL_TOKEN = re.compile(r"""('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|--[^\n]*|/\*.*?(?:\*/|$)"""
                                r"|(`(?:[^`]|``)*`?|[A-Za-z_][A-Za-z0-9_]*)(?:\s*\.\s*(?:`(?:[^`]|``)*`?|[A-Za-z_][A-Za-z0-9_]*))*"
                                r"|\s+|.)", re.DOTALL)
    catalogs = None
    out, words = [], []
    for m in _SQL_TOKEN.finditer(query):
        tok = m.group(0)
        if m.group(2) is None:
            out.append(tok)
            if not tok.isspace():
                words.append(None)
            continue
        parts = re.findall(r"`(?:[^`]|``)*`?|[A-Za-z_][A-Za-z0-9_]*", tok)
        names = [p[1:-1].replace("``", "`") if p.startswith("`") else p for p in parts]
        quoted = any(p.startswith("`") for p in parts)
        prev = [w for w in words if w not in _SKIP_WORDS]
        schema_place = len(names) == 2 and prev and (
            prev[-1] in _SCHEMA_WORDS or
            (prev[-1] in ("IN", "FROM") and len(prev) > 1 and prev[-2] in ("TABLES", "VIEWS", "FUNCTIONS")))
        if len(names) == 1:
            words.append(names[0].upper() if not quoted else None)
        else:
            words.append(None)
        cat = names[0].lower()
        if schema_place and cat != "spark_catalog":
            local = [names[1]] if cat == "hive_metastore" else [names[0] + _CATALOG_SEP + names[1]]
            out.append(_join_name(local, quoted))
            continue
        if len(names) >= 3:
            if catalogs is None:
                catalogs = _local_catalogs()
            if cat in catalogs:
                head = [names[1]] if cat == "hive_metastore" else [names[0] + _CATALOG_SEP + names[1]]
                out.append(_join_name(head + names[2:], quoted))
                continue
        out.append(tok)
    return "".join(out)


def _join_name(parts, quoted):
    if quoted:
        return ".".join("`%s`" % p.replace("`", "``") for p in parts)
    return ".".join(parts)


def _catalog_names(session):
    """{database: {table names}} of the session's catalog. Asked of the JVM's
    session catalog, one call per database: PySpark's catalog.listTables()
    builds a Table (with its metadata) per table, and made every `spark.x`
    of a context cost 0.1-0.3 s."""
    import re
    jcat = session._jsparkSession.sessionState().catalog()
    known = {}
    for db in jcat.listDatabases().mkString("\n").split("\n"):
        if not db:
            continue
        # TableIdentifier's text is `db`.`table`, backticks doubled; a temporary
        # view (`view`, no database) is not a table of this database.
        parts = [re.findall(r"`((?:[^`]|``)*)`", i)
                 for i in jcat.listTables(db).mkString("\n").split("\n")]
        known[db] = {p[-1].replace("``", "`") for p in parts if len(p) >= 2}
    return known


# Table directory -> ((inode, mtime), database, table) when this context
# last synced: a table another context overwrote (a new directory renamed in)
# or appended to (new files) since has a new signature, and Spark's cached
# list of its files must go, or reading it fails on files that are gone.
_spark_seen = {}


def _spark_sync(session):
    # Register the table directories other contexts (or earlier processes)
    # wrote, and refresh those they changed.
    wh = _spark_warehouse()
    known = _catalog_names(session)
    present = set()
    for entry in sorted(os.listdir(wh)):
        full = os.path.join(wh, entry)
        if entry.startswith((".", "_")) or not os.path.isdir(full):
            continue
        if entry.endswith(".db"):
            db, tables = entry[:-3], os.listdir(full)
            base = full
        else:
            db, tables, base = "default", [entry], wh
        if db not in known:
            session.sql("CREATE DATABASE IF NOT EXISTS `%s`" % db)
            known[db] = set()
        for t in tables:
            path = os.path.join(base, t)
            if t.startswith((".", "_")) or not os.path.isdir(path) \
                    or not os.path.exists(os.path.join(path, "_SUCCESS")):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            sig = (st.st_ino, st.st_mtime_ns)
            present.add(path)
            if t not in known[db]:
                session.catalog.createTable("%s.%s" % (db, t), path=path, source="parquet")
                known[db].add(t)
            elif _spark_seen.get(path, (sig,))[0] != sig:
                try:
                    session.catalog.refreshTable("`%s`.`%s`" % (db, t))
                except Exception:
                    pass  # a read then fails with Spark's own error, as before
            _spark_seen[path] = (sig, db, t)
    for path in set(_spark_seen) - present:
        _, db, t = _spark_seen.pop(path)
        if t in known.get(db, ()):
            _forget_table(session, db, t)


def _forget_table(session, db, t):
    """A table another context dropped (its directory is gone): out of this
    context's catalog too, so a read says it does not exist instead of
    failing on a missing path. Only a table registered from its directory
    (EXTERNAL): dropping it removes the name and never touches files, even
    if the directory comes back (an overwrite's swap), when the next sync
    registers it again."""
    name = _join_name([db, t], True)
    try:
        if session.catalog.getTable(name).tableType == "EXTERNAL":
            session.sql("DROP TABLE IF EXISTS %s" % name)
    except Exception:
        pass  # a read then fails with Spark's own error, as before


def _dropped_dir(session, query):
    """For DROP TABLE of a table registered from a warehouse directory (as
    dbx_write_table() writes them): that directory, to remove after the drop,
    or _spark_sync() would register the table again."""
    import re
    m = re.match(r"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(.+?)\s*;?\s*$", query, re.I | re.S)
    if not m:
        return None
    try:
        rows = session.sql("DESCRIBE TABLE EXTENDED %s" % m.group(1)).collect()
    except Exception:
        return None
    info = {r[0]: r[1] for r in rows}
    loc = re.sub(r"^file:(//)?", "/", info.get("Location") or "").replace("//", "/")
    wh = os.path.realpath(_spark_warehouse())
    if info.get("Type") == "EXTERNAL" and loc and os.path.realpath(loc).startswith(wh + os.sep):
        return loc
    return None


class _LazySpark:
    """The `spark` global: a SparkSession started on first attribute access;
    sql() and table() accept Unity Catalog names (main.schema.table)."""

    def __getattr__(self, attr):
        return getattr(_spark_session(), attr)

    def sql(self, query, *args, **kwargs):
        session = _spark_session()
        query = _local_sql(query)
        drop = _dropped_dir(session, query)
        df = session.sql(query, *args, **kwargs)
        if drop is not None:
            import shutil
            shutil.rmtree(drop, ignore_errors=True)
        return df

    def table(self, name):
        return _spark_session().table(_local_name(name))

    def __repr__(self):
        return "<dbrxr local SparkSession (%s)>" % (
            "started" if _spark["session"] is not None else "starts on first use")


# ---- SQL commands (language "sql") ---------------------------------------------
# As a SQL cell on Databricks: the statements run on the context's `spark`
# session, and the last one's rows come back as a table result (at most
# 10,000 rows or 2 MB, then `truncated`). Spark errors keep their class,
# message and position.
_SQL_MAX_ROWS = 10000
_SQL_MAX_BYTES = 2 << 20


def _split_sql(code):
    """Statements of a SQL command: split at `;` outside quotes and comments."""
    out, cur, i, n = [], [], 0, len(code)
    while i < n:
        c = code[i]
        if c in "'\"`":
            j = i + 1
            while j < n and code[j] != c:
                j += 2 if code[j] == "\\" and c != "`" else 1
            cur.append(code[i:j + 1])
            i = j + 1
        elif code.startswith("--", i):
            j = code.find("\n", i)
            i = n if j < 0 else j
        elif code.startswith("/*", i):
            j = code.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == ";":
            out.append("".join(cur))
            cur = []
            i += 1
        else:
            cur.append(c)
            i += 1
    out.append("".join(cur))
    return [s.strip() for s in out if s.strip()]


def _sql_value(v):
    """A cell as JSON: dates and times as ISO text, decimals as numbers,
    non-finite doubles as text (JSON has no NaN)."""
    import datetime
    import decimal
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else str(v)
    if isinstance(v, decimal.Decimal):
        return _sql_value(float(v))
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        import base64
        return base64.b64encode(bytes(v)).decode("ascii")
    if hasattr(v, "asDict"):
        return {k: _sql_value(x) for k, x in v.asDict().items()}
    if isinstance(v, dict):
        return {str(k): _sql_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_sql_value(x) for x in v]
    return str(v)


def _sql_table(df):
    rows = df.take(_SQL_MAX_ROWS + 1)
    truncated = len(rows) > _SQL_MAX_ROWS
    data, size = [], 0
    for r in rows[:_SQL_MAX_ROWS]:
        row = [_sql_value(x) for x in r]
        size += len(json.dumps(row))
        if size > _SQL_MAX_BYTES:
            truncated = True
            break
        data.append(row)
    schema = [{"name": f.name, "type": json.dumps(f.dataType.jsonValue()),
               "metadata": json.dumps(f.metadata or {})} for f in df.schema.fields]
    return {"data": data, "schema": schema, "truncated": truncated}


def _sql_error(exc):
    """(summary, cause) of a Spark SQL error: "[CLASS] message (line l, pos p)",
    and the whole message (with the "== SQL ==" pointer of parse errors)."""
    if not hasattr(exc, "getErrorClass"):
        return _error_result(exc, "<sql>")
    text = str(exc).strip()
    first = text.split("\n== SQL ==")[0].strip()
    first = first.split("; line ")[0].split(";\n")[0].strip()
    where = ""
    origin = getattr(exc, "_origin", None)
    try:
        line, pos = origin.line(), origin.startPosition()
        if line.isDefined() and pos.isDefined() and "(line " not in first:
            where = " (line %d, pos %d)" % (line.get(), pos.get())
    except Exception:
        pass
    state = exc.getSqlState()
    summary = "%s: %s%s%s" % (type(exc).__name__, first.splitlines()[0] if first else "",
                              " SQLSTATE: %s" % state if state else "", where)
    return summary, "%s: %s" % (type(exc).__name__, text)


def _run_sql(cid, n, code):
    spark = _LazySpark()
    result = {"status": "ok", "data": ""}
    sc = None
    try:
        with _lock:
            _state["current"] = cid
        session = _spark_session()
        sc = session.sparkContext
        # Cancel interrupts the Python side; the job group stops Spark's jobs.
        sc.setJobGroup("dbrxr-sql-%s" % cid, "SQL command %d" % n, interruptOnCancel=True)
        df = None
        _state["user"] = True
        for stmt in _split_sql(code):
            df = spark.sql(stmt)
        table = _sql_table(df) if df is not None else {"data": [], "schema": [], "truncated": False}
        _state["user"] = False
        result["table"] = table
    except BaseException as exc:  # noqa: B902
        _state["user"] = False
        if isinstance(exc, KeyboardInterrupt) and sc is not None:
            sc.cancelJobGroup("dbrxr-sql-%s" % cid)
        summary, cause = _sql_error(exc)
        result = {"status": "error", "summary": summary, "cause": cause, "data": ""}
    finally:
        _state["user"] = False
        if sc is not None:
            sc.setLocalProperty("spark.jobGroup.id", None)
        with _lock:
            if _state["cancel_id"] == cid:
                result = {"status": "cancelled", "data": ""}
            _state["current"] = None
    return result


# ---- R commands (language "r") --------------------------------------------------
# As an R context on Databricks: the code runs in the context's own R (embedded
# through rpy2, started on the first R command) like lines typed at R's
# prompt: each top-level expression is evaluated in the global environment
# and its value printed when visible, warnings are reported after it, and an
# error ends the command with R's own "Error in call : message". The result
# is text.
_R = {"repl": None, "stack": None}

_R_REPL = r"""
function(code) {
  exprs <- tryCatch(parse(text = code, keep.source = FALSE),
                    error = function(e) e)
  if (inherits(exprs, "error")) return(c("error", paste0("Error: ", conditionMessage(exprs))))
  warns <- list()
  said <- function(w) {
    call <- conditionCall(w)
    if (is.null(call) || identical(call[[1]], quote(eval))) conditionMessage(w)
    else paste0("In ", paste(deparse(call, nlines = 1L), collapse = ""), " : ", conditionMessage(w))
  }
  failed <- tryCatch(withCallingHandlers({
    for (e in exprs) {
      v <- withVisible(eval(e, globalenv()))
      if (v$visible) print(v$value)
    }
    NULL
  }, warning = function(w) {
    warns[[length(warns) + 1L]] <<- said(w)
    invokeRestart("muffleWarning")
  }), error = function(e) e)
  if (length(warns) == 1L) cat("Warning message:\n", warns[[1]], "\n", sep = "")
  if (length(warns) > 1L) {
    cat("Warning messages:\n", paste0(seq_along(warns), ": ", unlist(warns), "\n"), sep = "")
  }
  if (is.null(failed)) return(c("ok", ""))
  call <- conditionCall(failed)
  where <- if (is.null(call) || identical(call[[1]], quote(eval))) "Error: "
           else paste0("Error in ", paste(deparse(call, nlines = 1L), collapse = ""), " : ")
  c("error", paste0(where, conditionMessage(failed)))
}
"""


def _libr():
    openrlib = sys.modules.get("rpy2.rinterface_lib.openrlib")
    for path in [None] + ([os.path.join(openrlib.R_HOME, "lib", "libR.so")]
                          if openrlib is not None and getattr(openrlib, "R_HOME", None) else []):
        try:
            lib = ctypes.CDLL(path)
            ctypes.c_size_t.in_dll(lib, "R_CStackLimit")
            return lib
        except (OSError, ValueError):
            continue
    return None


def _r_repl():
    """The R function that runs an R command (R started on first use, on
    this thread)."""
    if _R["repl"] is None:
        import rpy2.rinterface as ri
        from rpy2.rinterface_lib import openrlib
        with openrlib.rlock:
            mine = not ri.embedded.isready()
            if mine:
                ri.initr_simple()
        lib = _libr()
        if lib is not None:
            start = ctypes.c_size_t.in_dll(lib, "R_CStackStart")
            limit = ctypes.c_size_t.in_dll(lib, "R_CStackLimit")
            # R's C stack check is for the thread that started R: this one,
            # or else (R started elsewhere) no check at all.
            _R["stack"] = (lib, (start.value, limit.value) if mine else (start.value, ctypes.c_size_t(-1).value))
        _R["repl"] = ri.baseenv["eval"](ri.parse(_R_REPL))
        _route_r_console()
        _bind_r_flag()
    if _R["stack"] is not None:
        lib, (start, limit) = _R["stack"]
        ctypes.c_size_t.in_dll(lib, "R_CStackStart").value = start
        ctypes.c_size_t.in_dll(lib, "R_CStackLimit").value = limit
    return _R["repl"]


def _run_r(cid, n, code):
    out = io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = out
    result = {"status": "ok"}
    try:
        with _lock:
            _state["current"] = cid
            if _r_flag is not None:
                _r_flag.value = 0  # an interrupt meant for an earlier command
        try:
            repl = _r_repl()
        except ImportError as exc:
            raise RuntimeError("R is not available in this context: its Python cannot import rpy2 (%s). "
                               "Install rpy2 for the local cluster's Python (`apt-get install python3-rpy2` "
                               "or `pip install rpy2`)." % exc)
        import rpy2.rinterface as ri
        _state["user"] = True
        status, message = list(repl(ri.StrSexpVector([textwrap.dedent(code)])))
        _state["user"] = False
        if status == "error":
            result = {"status": "error", "summary": message.splitlines()[0] if message else "Error",
                      "cause": message}
    except BaseException as exc:  # noqa: B902 - an interrupt, or R could not start
        _state["user"] = False
        summary, cause = _error_result(exc, "<r>")
        result = {"status": "error", "summary": summary, "cause": cause}
    finally:
        _state["user"] = False
        with _lock:
            if _state["cancel_id"] == cid:
                result = {"status": "cancelled"}
            _state["current"] = None
        sys.stdout, sys.stderr = saved
    text = out.getvalue()
    if text.endswith("\n"):
        text = text[:-1]
    result["data"] = text
    return result


def _reply(result):
    while True:
        try:
            _send(result)
            return
        except KeyboardInterrupt:
            continue  # a late interrupt for the command that just ended


def main():
    globals_ = {"__name__": "__main__", "__builtins__": __builtins__, "spark": _LazySpark()}
    try:
        import importlib.util
        rpy2 = importlib.util.find_spec("rpy2") is not None
    except Exception:
        rpy2 = False
    signal.signal(signal.SIGINT, _on_sigint)
    threading.Thread(target=_read_stdin, daemon=True).start()
    _send({"ready": True, "pid": os.getpid(), "python": sys.version.split()[0], "rpy2": rpy2})
    while True:
        try:
            msg = _queue.get()
        except KeyboardInterrupt:
            continue
        if msg is None:
            return
        cid = msg.get("id")
        with _lock:
            dropped = cid in _dropped
            _dropped.discard(cid)
        if dropped:
            _reply({"id": cid, "status": "cancelled", "data": ""})
            continue
        # rpy2 may install its own SIGINT handler when R starts: take it back.
        signal.signal(signal.SIGINT, _on_sigint)
        try:
            if msg.get("language") == "sql":
                result = _run_sql(cid, int(msg.get("n", 0)), msg.get("code", ""))
            elif msg.get("language") == "r":
                result = _run_r(cid, int(msg.get("n", 0)), msg.get("code", ""))
            else:
                result = _run(globals_, cid, int(msg.get("n", 0)), msg.get("code", ""))
        except KeyboardInterrupt:  # landed after the user's code, before cleanup
            with _lock:
                _state["current"] = None
            result = {"status": "cancelled", "data": ""}
        result["id"] = cid
        _reply(result)


if __name__ == "__main__":
    main()
