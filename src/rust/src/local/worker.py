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
# Every Spark session this process makes, the worker's or one the user's code
# makes with SparkSession.builder.getOrCreate(), reads its settings from a
# spark-defaults.conf of the cluster (SPARK_CONF_DIR): among them, a Spark
# catalog per Unity Catalog catalog (dbrxr.LocalCatalog: `main`,
# `hive_metastore`, those made with CREATE CATALOG; see spark_catalog/ beside
# this file), so three-level names work wherever Spark takes a name. Tables are
# Parquet directories under the state directory, shared by all contexts.
_spark = {"session": None, "conf": None}
_spark_lock = threading.Lock()


def _spark_dir():
    root = os.environ.get("DBRXR_LOCAL_FS_ROOT") or os.path.join(os.getcwd(), "dbrxr-state")
    return os.path.join(root, "spark")


def _spark_warehouse():
    return os.path.join(_spark_dir(), "warehouse")


def _catalog_jar():
    """The catalog plugin, compiled against this Python's PySpark jars once per
    machine (cached by the hash of its sources and the PySpark version)."""
    import glob
    import hashlib
    import shutil
    import subprocess
    import tempfile
    import zipfile
    import fcntl
    import pyspark
    src_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spark_catalog")
    sources = sorted(glob.glob(os.path.join(src_dir, "*.java")))
    if not sources:
        raise RuntimeError("the local cluster's Spark catalog sources are missing from %s" % src_dir)
    h = hashlib.sha256(pyspark.__version__.encode())
    for s in sources:
        with open(s, "rb") as f:
            h.update(f.read())
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "dbrxr")
    try:
        os.makedirs(cache, exist_ok=True)
    except OSError:
        cache = _spark_dir()
        os.makedirs(cache, exist_ok=True)
    jar = os.path.join(cache, "dbrxr-spark-catalog-%s.jar" % h.hexdigest()[:16])
    if os.path.exists(jar):
        return jar
    javac = os.path.join(os.environ["JAVA_HOME"], "bin", "javac") if os.environ.get("JAVA_HOME") else shutil.which("javac")
    if not javac or not os.path.exists(javac):
        raise RuntimeError("dbrxr's local cluster builds its Unity Catalog support for Spark with a Java "
                           "compiler, and none was found: install a JDK 17 (Debian: apt-get install "
                           "openjdk-17-jdk-headless), or set JAVA_HOME to one")
    with open(jar + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two contexts starting at once compile once
        if os.path.exists(jar):
            return jar
        jars = os.path.join(os.path.dirname(pyspark.__file__), "jars", "*")
        with tempfile.TemporaryDirectory(dir=cache) as out:
            done = subprocess.run([javac, "-nowarn", "-Xlint:-deprecation", "-d", out, "-cp", jars] + sources,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if done.returncode != 0:
                raise RuntimeError("compiling the local cluster's Spark catalog failed:\n" +
                                   done.stdout.decode(errors="replace")[-2000:])
            part = jar + ".part"
            with zipfile.ZipFile(part, "w") as z:
                for root, _, files in os.walk(out):
                    for f in files:
                        full = os.path.join(root, f)
                        z.write(full, os.path.relpath(full, out))
            os.replace(part, jar)
    return jar


def _spark_conf():
    """Point this process's Spark sessions at the cluster's settings (once)."""
    if _spark["conf"] is not None:
        return _spark["conf"]
    wh = _spark_warehouse()
    tmp = os.path.join(_spark_dir(), "tmp")
    conf_dir = os.path.join(_spark_dir(), "conf")
    for d in (wh, tmp, conf_dir):
        os.makedirs(d, exist_ok=True)
    settings = [
        ("spark.master", os.environ.get("DBRXR_SPARK_MASTER", "local[2]")),
        ("spark.app.name", "dbrxr-local"),
        ("spark.jars", _catalog_jar()),
        ("spark.sql.extensions", "dbrxr.LocalExtensions"),
        # Unity Catalog names: each catalog is a dbrxr.LocalCatalog over the
        # warehouse; two-part names are hive_metastore's, as on a workspace
        # whose default catalog it is.
        ("spark.sql.defaultCatalog", "hive_metastore"),
        ("spark.sql.catalog.hive_metastore", "dbrxr.LocalCatalog"),
        ("spark.sql.catalog.hive_metastore.warehouse", wh),
        ("spark.sql.catalog.main", "dbrxr.LocalCatalog"),
        ("spark.sql.catalog.main.warehouse", wh),
        # dbfs:/ paths: the files the DBFS API and /dbfs/ show.
        ("spark.hadoop.fs.dbfs.impl", "dbrxr.DbfsFileSystem"),
        ("spark.hadoop.fs.dbfs.impl.disable.cache", "true"),
        ("spark.hadoop.fs.dbfs.root", os.path.join(os.path.dirname(_spark_dir()), "dbfs")),
        ("spark.ui.enabled", "false"),
        ("spark.ui.showConsoleProgress", "false"),
        # Local mode runs everything in the driver's JVM: 1 GB (the default)
        # fails to collect a 10-million-row table.
        ("spark.driver.memory", os.environ.get("DBRXR_SPARK_MEMORY", "4g")),
        ("spark.sql.shuffle.partitions", "2"),
        ("spark.sql.session.timeZone", "UTC"),
        ("spark.sql.warehouse.dir", wh),
        # No Derby metastore shared by contexts: the catalogs keep nothing in memory.
        ("spark.sql.catalogImplementation", "in-memory"),
        ("spark.sql.legacy.createHiveTableByDefault", "false"),
        # Dates before 1582 as written (proleptic Gregorian, as R's).
        ("spark.sql.parquet.datetimeRebaseModeInRead", "CORRECTED"),
        ("spark.sql.parquet.datetimeRebaseModeInWrite", "CORRECTED"),
        ("spark.sql.parquet.int96RebaseModeInRead", "CORRECTED"),
        ("spark.sql.parquet.int96RebaseModeInWrite", "CORRECTED"),
        ("spark.sql.execution.arrow.pyspark.enabled", "true"),
        ("spark.local.dir", tmp),
        ("spark.driver.extraJavaOptions", "-Djava.io.tmpdir=" + tmp),
    ]
    text = "".join("%s %s\n" % (k, v) for k, v in settings)
    path = os.path.join(conf_dir, "spark-defaults.conf")
    try:
        with open(path) as f:
            same = f.read() == text
    except OSError:
        same = False
    if not same:
        part = "%s.%d" % (path, os.getpid())
        with open(part, "w") as f:
            f.write(text)
        os.replace(part, path)
    os.environ["SPARK_CONF_DIR"] = conf_dir
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    _spark["conf"] = conf_dir
    return conf_dir


def _spark_session():
    """The context's SparkSession (created on first call), made the active
    one of the calling thread's JVM thread: code that runs on a thread of its
    own (R requests, the user's threads) otherwise resolves names through
    Spark's fallback settings, whose default catalog is not the cluster's
    (a two-part name then misses its schema)."""
    with _spark_lock:
        if _spark["session"] is None:
            _spark_conf()
            from pyspark.sql import SparkSession
            session = SparkSession.builder.getOrCreate()
            session.sparkContext.setLogLevel("ERROR")
            _spark["session"] = session
        session = _spark["session"]
    session._jvm.org.apache.spark.sql.SparkSession.setActiveSession(session._jsparkSession)
    return session


class _LazySpark:
    """The `spark` global: the SparkSession, started on first attribute access."""

    def __getattr__(self, attr):
        return getattr(_spark_session(), attr)

    def __repr__(self):
        return "<dbrxr local SparkSession (%s)>" % (
            "started" if _spark["session"] is not None else "starts on first use")


def _install_platform():
    """The local cluster's side of the platform contract: shipped code asks
    inst/python/dbrxr_platform.py for what differs from a Databricks cluster,
    and that module finds this implementation in sys.modules. A function left
    out keeps the Databricks behaviour, so only what differs is here: the
    context's Spark session (started on first use), and, where the machine
    refused the mount namespace, the store's files for /dbfs and /Volumes
    paths. Also points Spark at the cluster's settings when PySpark is there,
    so a session the user's code makes itself finds the catalogs."""
    import types
    mod = types.ModuleType("dbrxr_local_platform")
    mod.spark = _spark_session
    root = os.environ.get("DBRXR_LOCAL_FS_ROOT")
    mounted = False
    if root:
        try:
            mounted = os.path.samefile("/dbfs", os.path.join(root, "dbfs"))
        except OSError:
            pass
    if root and not mounted:
        def file_path(path):
            if path in ("/dbfs", "/Volumes") or path.startswith(("/dbfs/", "/Volumes/")):
                return os.path.join(root, path.lstrip("/"))
            return path

        def spark_path(path):
            # dbfs:/ has its own Hadoop filesystem here (dbrxr.DbfsFileSystem);
            # /Volumes is only a file of the store.
            if path.startswith("/Volumes/"):
                return "file://" + file_path(path)
            return "dbfs:/" + path[len("/dbfs/"):] if path.startswith("/dbfs/") else "file://" + path
        mod.file_path = file_path
        mod.spark_path = spark_path
    sys.modules["dbrxr_local_platform"] = mod
    try:
        import importlib.util
        if importlib.util.find_spec("pyspark") is not None:
            _spark_conf()
    except Exception as e:  # noqa: BLE001 - said when Spark is first used
        sys.stderr.write("dbrxr local cluster: Spark's catalogs are not set up: %s\n" % e)


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
    # The cluster tells clients whether a command will wait for Spark to start.
    result["spark"] = _spark["session"] is not None
    while True:
        try:
            _send(result)
            return
        except KeyboardInterrupt:
            continue  # a late interrupt for the command that just ended


def main():
    _install_platform()
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
