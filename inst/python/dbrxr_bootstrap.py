"""dbrxr bootstrap: installed once per execution context by the dbrxr R package.

One protocol for every verb. A request names its *target*: "r" (dbrxr's R
dispatcher, kept in a private R environment) or one of our Python modules
(`dbrxr_<target>.py`, e.g. dbrxr_spark for tables). All of them arrive in one
bootstrap command, are written to one directory keyed by the hash of their
sources (on sys.path, so targets import each other and Spark can ship them to
executors), and are answered the same way: the request is R serialize() bytes,
inline (base64) or staged; the answer is R serialize() bytes of
`list(status, value | error)`, inline (base64 on stdout) or written to
staging. Request ids make a repeated request answer from a cache instead of
running twice.

R runs on one thread of its own (`run_r`): a stack of known size with R's C
stack check pointed at it (rpy2 turns the check off, so deep recursion would
kill the process), and the caller's contextvars (rpy2's conversion rules).

The answer line is "<MARKER>:<KIND> <payload>"; MARKER is handed over by the
client at setup (it is defined once, in the Rust client).
"""

import base64
import collections
import contextvars
import ctypes
import importlib
import os
import platform
import queue
import sys
import tempfile
import threading
import time
import traceback
import uuid
from urllib.parse import urlencode

MARKER = None  # handed over by the client at setup(): defined once, in Rust
SOURCES_HASH = None

_state = {"r": None, "ready": False, "dir": None, "progress": None, "cancel": [],
          "result": None, "root": None}
_lock = threading.Lock()


class TargetError(Exception):
    """An expected failure of a Python target: R receives
    list(class = cls, message = message, <fields>)."""

    def __init__(self, cls, message, **fields):
        super().__init__(message)
        self.cls = cls
        self.message = message
        self.fields = fields


def _say(kind, payload=""):
    sys.stdout.write("%s:%s %s\n" % (MARKER, kind, payload))
    sys.stdout.flush()


def map_path(path):
    """The file of a staged path in this process (dbfs:/x is /dbfs/x; see
    dbrxr_platform.file_path)."""
    import dbrxr_platform
    return dbrxr_platform.file_path(path)


def scratch_path(name):
    """A staged path for the running request's temporary files: the
    session's staging directory, which every node sees and which goes with
    the session."""
    result = _state["result"]
    if not result:
        raise RuntimeError("no request is running, so there is no session directory")
    return result.rsplit("/", 1)[0] + "/" + name


def cache_path(hash_):
    """The staged path of a content-addressed object (shared by sessions)."""
    root = _state["root"]
    if not root:
        raise RuntimeError("no request is running, so the staging location is unknown")
    return root.rstrip("/") + "/cache/" + hash_


def stage_object(hash_, data):
    """Write `data` as the staged object `hash_`, whole or not at all (a
    unique part file renamed in place: two writers never mix); its local path."""
    local = map_path(cache_path(hash_))
    os.makedirs(os.path.dirname(local), exist_ok=True)
    part = "%s.part-%s" % (local, uuid.uuid4().hex[:8])
    with open(part, "wb") as f:
        f.write(data)
    os.replace(part, local)
    return local


def module_dir():
    """The directory holding this module and the targets (None before setup)."""
    return _state["dir"] or os.path.dirname(os.path.abspath(__file__))


# ---- rpy2 ------------------------------------------------------------------------

def _rpy2_requirement():
    """rpy2 >= 3.6 calls R_getVar, which R only has from 4.5: older R (DBR 16.4
    LTS and below ship 4.2-4.4) needs rpy2 3.5.x."""
    import subprocess
    r_home = os.environ.get("R_HOME")
    r_bin = os.path.join(r_home, "bin", "R") if r_home else "R"
    try:
        out = subprocess.run([r_bin, "--vanilla", "--slave", "-e",
                              "cat(R.version$major, R.version$minor)"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=60).stdout.decode().split()
        major, minor = int(out[0]), int(out[1].split(".")[0])
    except Exception:
        return "rpy2"
    return "rpy2" if (major, minor) >= (4, 5) else "rpy2>=3.5,<3.6"


def _pip_install_rpy2():
    import subprocess
    cmd = [sys.executable, "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check", _rpy2_requirement()]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = proc.stdout.decode("utf-8", "replace")[-2000:]
        raise RuntimeError("pip install rpy2 failed (exit %d): %s" % (proc.returncode, tail))
    importlib.invalidate_caches()


def _import_rpy2(install):
    try:
        import rpy2  # noqa: F401
        import rpy2.rinterface  # noqa: F401
        return None
    except Exception as e:  # ImportError, or R missing behind rpy2
        if not install:
            return "%s: %s" % (type(e).__name__, e)
    try:
        _pip_install_rpy2()
        import rpy2  # noqa: F401
        import rpy2.rinterface  # noqa: F401
        return None
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)


# ---- the R thread ----------------------------------------------------------------

def _stack_bytes():
    """The R thread's stack: as large as the process's main stack (so deep
    recursion ends where a local R ends it), at least 8 MB."""
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
        if soft == resource.RLIM_INFINITY or soft <= 0:
            return 64 << 20
        return max(8 << 20, min(soft, 1 << 30))
    except Exception:
        return 8 << 20


def _libr():
    from rpy2.rinterface_lib import openrlib
    for path in (None, os.path.join(getattr(openrlib, "R_HOME", "") or "", "lib", "libR.so")):
        try:
            lib = ctypes.CDLL(path)
            ctypes.c_int.in_dll(lib, "R_interrupts_pending")
            return lib
        except (OSError, ValueError):
            continue
    return None


def _this_thread_stack():
    """(top, size) of the calling thread's stack, from pthread."""
    libc = ctypes.CDLL(None)
    libc.pthread_self.restype = ctypes.c_ulong
    attr = ctypes.create_string_buffer(256)  # pthread_attr_t is 56 bytes on x86_64
    if libc.pthread_getattr_np(ctypes.c_ulong(libc.pthread_self()), attr) != 0:
        return None
    addr, size = ctypes.c_void_p(), ctypes.c_size_t()
    try:
        if libc.pthread_attr_getstack(attr, ctypes.byref(addr), ctypes.byref(size)) != 0:
            return None
    finally:
        libc.pthread_attr_destroy(attr)
    return addr.value + size.value, size.value


def _point_c_stack_check_here():
    """R's C stack check for this thread: rpy2 sets the limit to -1 (off),
    and R measured its start on the main thread. Without it, deep recursion
    overflows the stack and kills the process instead of an R error."""
    lib = _libr()
    where = _this_thread_stack()
    if lib is None or where is None:
        return
    top, size = where
    ctypes.c_size_t.in_dll(lib, "R_CStackStart").value = top
    # A little below the real size: Python's frames below R use some too.
    ctypes.c_size_t.in_dll(lib, "R_CStackLimit").value = max(size - (256 << 10), 1 << 20)


def _init_r():
    import rpy2.rinterface as ri
    from rpy2.rinterface_lib import openrlib
    with openrlib.rlock:
        if not ri.embedded.isready():
            # This R serves large requests one after another: each leaves
            # tens of MB of garbage that R's default heap growth collects
            # with a full GC per chunk (a third of the scoring time). Faster
            # growth (?Memory) collects less often. R reads it at start only;
            # a value the cluster or the user set wins.
            if not os.environ.get("R_GC_MEM_GROW"):
                os.environ["R_GC_MEM_GROW"] = "3"
            ri.initr_simple()
    _point_c_stack_check_here()


class _RThread(object):
    def __init__(self):
        self.jobs = queue.Queue()
        self.started = threading.Event()
        self.error = None
        self.lock = threading.Lock()
        self.current = None  # the box of the job running now
        old = threading.stack_size()
        threading.stack_size(_stack_bytes())
        try:
            self.thread = threading.Thread(target=self._loop, name="dbrxr-R", daemon=True)
            self.thread.start()
        finally:
            threading.stack_size(old)
        self.started.wait()
        if self.error is not None:
            raise self.error

    def _loop(self):
        try:
            _init_r()
        except BaseException as e:  # noqa: B902 - reported to the caller
            self.error = e
        self.started.set()
        while True:
            try:
                job = self.jobs.get()
            except KeyboardInterrupt:
                continue  # an interrupt() that landed after its job: never ends R's thread
            self._run(*job)

    def _run(self, ctx, fn, args, box, done):
        try:
            try:
                with self.lock:
                    self.current = box
                box.append((True, ctx.run(fn, *args)))
            except BaseException as e:  # noqa: B902 - re-raised by the caller
                if not box:
                    box.append((False, e))
            finally:
                with self.lock:
                    self.current = None
                    _async_raise(self.thread.ident, None)  # one sent too late
        except KeyboardInterrupt:  # interrupt() landed in the lines above
            if not box:
                box.append((False, KeyboardInterrupt()))
        done.release()

    def interrupt(self, box):
        """Raise KeyboardInterrupt in Python code this thread runs for the job
        of `box` (a Python target: R's interrupt flag does not stop MLflow's
        HTTP retries or a Py4J wait, and a cancel the command ignores would
        cost the context its process)."""
        with self.lock:
            if self.current is box and not box:
                _async_raise(self.thread.ident, KeyboardInterrupt)


def _async_raise(ident, exc):
    """Raise `exc` in thread `ident` when it next runs Python code (None:
    forget one not raised yet)."""
    try:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(ident), ctypes.py_object(exc) if exc is not None else None)
    except Exception:
        pass


_thread = {"r": None}
_thread_lock = threading.Lock()


def _r_thread():
    with _thread_lock:
        if _thread["r"] is None:
            _thread["r"] = _RThread()
        return _thread["r"]


def ensure_r():
    """Start embedded R (once, on the R thread)."""
    _r_thread()


def _interrupt_r(value=1):
    lib = _libr()
    if lib is not None:
        ctypes.c_int.in_dll(lib, "R_interrupts_pending").value = value


def _wake(thread):
    """A signal to the R thread ends a blocking wait it is in (Sys.sleep's
    select(), a read), so R sees the pending interrupt at once; Python runs
    its handler on the main thread, which is already interrupted."""
    import signal
    try:
        signal.pthread_kill(thread.ident, signal.SIGINT)
    except (OSError, ValueError, AttributeError):
        pass


def run_r(fn, *args):
    """Run fn(*args) on the R thread with the caller's contextvars; an
    interrupt of the caller interrupts R (and calls the on_cancel hooks) and
    waits for R to stop before it is raised."""
    t = _r_thread()
    if threading.current_thread() is t.thread:
        return fn(*args)
    # A bare lock, released by the R thread, is the cheapest hand-back (an
    # Event is a Condition: more Python code on both sides of every call).
    box, done = [], threading.Lock()
    done.acquire()
    t.jobs.put((contextvars.copy_context(), fn, args, box, done))
    # The one who cancels keeps sending SIGINT until the command ends, so a
    # KeyboardInterrupt can land anywhere in this function's own code: the
    # handler only sets a flag, and the work of cancelling happens in the
    # loop, with the hooks on a thread of their own (Python raises
    # KeyboardInterrupt on the main thread only, so a hook's Py4J call to
    # cancel a Spark job group is never cut short).
    interrupted = cancelling = False
    since = None  # when the interrupt came
    while True:
        try:
            while not box:
                if interrupted and not cancelling:
                    cancelling = True
                    since = time.monotonic()
                    _interrupt_r()
                    threading.Thread(target=_run_cancel_hooks, daemon=True,
                                     args=(list(_state["cancel"]),)).start()
                if interrupted:
                    _wake(t.thread)
                    # R code stops at R's flag; Python code (a Python target)
                    # only at an exception raised in its thread: after 0.5 s,
                    # well within the 3 s a local cluster gives a cancel, even
                    # on a loaded machine.
                    if since is not None and time.monotonic() - since > 0.5:
                        since = None
                        t.interrupt(box)
                done.acquire(True, 0.05)  # the R thread fills box, then releases
            break
        except KeyboardInterrupt:
            interrupted = True
    ok, value = box[0]
    if interrupted:
        _interrupt_r(0)  # R has stopped: an interrupt left pending would hit the next call
    if ok:
        return value
    if interrupted:
        raise KeyboardInterrupt()
    raise value


def _run_cancel_hooks(hooks):
    for hook in hooks:
        try:
            hook()
        except BaseException:  # noqa: B902 - a failed hook must not stop the others
            pass


def on_cancel(fn):
    """Call fn() if the running request is cancelled (e.g. cancel a Spark job group)."""
    _state["cancel"].append(fn)


def progress(done, total, text=""):
    """Report progress of the running request (shown to the R user); never fails."""
    path = _state["progress"]
    if not path:
        return
    try:
        local = map_path(path)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with open(local + ".part", "w") as f:
            f.write("%s %s %s" % (float(done), float(total), str(text).replace("\n", " ")))
        os.replace(local + ".part", local)
    except Exception:
        pass


# ---- setup -------------------------------------------------------------------------

def _install_files(files):
    """Write the sources to a directory keyed by their hash (once; atomic per
    file) and put it first on sys.path. Modules of another version are
    dropped so they import again from here."""
    d = os.path.join(tempfile.gettempdir(), "dbrxr-py-" + SOURCES_HASH[:16])
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        p = os.path.join(d, name)
        if not os.path.exists(p):
            with open(p + ".part", "wb") as f:
                f.write(data)
            os.replace(p + ".part", p)
    if d in sys.path:
        sys.path.remove(d)
    sys.path.insert(0, d)
    # Our modules of another source directory go (a module without a file,
    # such as the platform's local side the cluster installs, stays).
    for name in list(sys.modules):
        mod = sys.modules[name]
        f = getattr(mod, "__file__", None) or ""
        if name.startswith("dbrxr_") and name != "dbrxr_bootstrap" and f and os.path.dirname(f) != d:
            del sys.modules[name]
    importlib.invalidate_caches()
    _state["dir"] = d
    return d


def _load_dispatcher(src):
    import rpy2.rinterface as ri
    # The dispatcher lives in its own environment, never in the global one.
    env = ri.baseenv["new.env"](parent=ri.globalenv)
    ri.baseenv["eval"](ri.parse(src), env)
    # Where /dbfs and /Volumes are in this process (themselves on a cluster).
    roots = ri.StrSexpVector([map_path("/dbfs"), map_path("/Volumes")])
    roots.names = ri.StrSexpVector(["/dbfs", "/Volumes"])
    env["fs_roots"] = roots
    _state["r"] = env
    return str(env.find("dbrxr_info")()[0][0])


def setup(marker, sources_hash, files_b64, install_rpy2=False):
    """Install the sources, start R, load the dispatcher; report versions or
    why it cannot."""
    global MARKER, SOURCES_HASH
    MARKER, SOURCES_HASH = marker, sources_hash
    files = {k: base64.b64decode(v) for k, v in files_b64.items()}
    d = _install_files(files)
    this = sys.modules.get(__name__)
    if this is not None:
        this.__file__ = os.path.join(d, "dbrxr_bootstrap.py")
    problem = _import_rpy2(install_rpy2)
    if problem is not None:
        _say("NORPY2", urlencode({
            "python": sys.executable, "python_version": platform.python_version(),
            "problem": problem}))
        return
    import rpy2
    r_version = run_r(_load_dispatcher, files["dispatcher.R"].decode("utf-8"))
    _state["ready"] = True
    _say("READY", urlencode({
        "r_version": r_version, "rpy2_version": rpy2.__version__,
        "python_version": platform.python_version(),
        "libraries": _library_versions(),
        "platform": platform.platform(), "pid": os.getpid(),
        "sources": SOURCES_HASH}))


def _library_versions():
    """The libraries a Databricks Runtime pins, as installed here ("pandas
    1.5.3, pyarrow 14.0.1, ..."): read from package metadata, nothing imported."""
    import importlib.metadata as metadata
    found = []
    for name in ("pandas", "pyarrow", "numpy", "pyspark", "mlflow", "mlflow-skinny"):
        try:
            found.append("%s %s" % (name, metadata.version(name)))
        except Exception:
            pass
    return ", ".join(found)


# ---- R values <-> Python values ------------------------------------------------------

def from_r(x):
    """A request list as Python: named list -> dict, unclassed atomic vectors
    -> scalars (length 1) or lists, NULL -> None, raw -> bytes; anything else
    (data frames, factors, functions, models) stays an rpy2 Sexp."""
    import rpy2.rinterface as ri
    t = x.typeof
    R = ri.RTYPES
    if t == R.NILSXP:
        return None
    classed = "class" in list(x.list_attrs())
    if t == R.VECSXP and not classed:
        names = x.names
        items = [from_r(v) for v in x]
        if isinstance(names, ri.NULLType) or any(n in ("", None) for n in names):
            return items
        return dict(zip(list(names), items))
    if t == R.RAWSXP and not classed:
        return bytes(_raw_buffer(x))
    if t in (R.STRSXP, R.REALSXP, R.INTSXP, R.LGLSXP) and not classed:
        na = {R.STRSXP: ri.NA_Character, R.INTSXP: ri.NA_Integer, R.LGLSXP: ri.NA_Logical}.get(t)
        vals = []
        for v in x:
            if na is not None and v is na:
                vals.append(None)
            elif t == R.LGLSXP:
                vals.append(bool(v))
            else:
                vals.append(v)
        return vals[0] if len(vals) == 1 else vals
    return x


def to_r(v):
    """A Python value as R (the inverse of from_r for what targets return)."""
    import rpy2.rinterface as ri
    if v is None:
        return ri.NULL
    if isinstance(v, ri.Sexp):
        return v
    if isinstance(v, bool):
        return ri.BoolSexpVector([v])
    if isinstance(v, (int, float)):
        return ri.FloatSexpVector([float(v)])
    if isinstance(v, str):
        return ri.StrSexpVector([v])
    if isinstance(v, (bytes, bytearray, memoryview)):
        return ri.ByteSexpVector.from_memoryview(memoryview(bytes(v)))
    if isinstance(v, dict):
        out = ri.ListSexpVector([to_r(x) for x in v.values()])
        out.names = ri.StrSexpVector([str(k) for k in v.keys()])
        return out
    if isinstance(v, (list, tuple)):
        vals = list(v)
        present = [x for x in vals if x is not None]
        if present and all(isinstance(x, str) for x in present):
            return ri.StrSexpVector([ri.NA_Character if x is None else x for x in vals])
        if present and all(isinstance(x, bool) for x in present):
            return ri.BoolSexpVector([ri.NA_Logical if x is None else x for x in vals])
        if present and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in present):
            return ri.FloatSexpVector([float("nan") if x is None else float(x) for x in vals])
        return ri.ListSexpVector([to_r(x) for x in vals])
    raise TypeError("cannot return a %s to R" % type(v).__name__)


# ---- one request -----------------------------------------------------------------------

def _raw_from_bytes(data):
    # memmove into a fresh R raw vector; ByteSexpVector(bytes) would go
    # element by element (about 10 s for 12 MB).
    from rpy2.rinterface import ByteSexpVector
    return ByteSexpVector.from_memoryview(memoryview(data))


def _raw_from_files(paths):
    # The parts read straight into one R raw vector: one copy, where joining
    # them in Python first would make two more.
    import rpy2.rinterface as ri
    sizes = [os.path.getsize(p) for p in paths]
    vec = ri.baseenv["raw"](sum(sizes))
    view = memoryview(_raw_buffer(vec))
    at = 0
    for p, n in zip(paths, sizes):
        with open(p, "rb", buffering=0) as f:
            got = 0
            while got < n:
                k = f.readinto(view[at + got:at + n])
                if not k:
                    raise IOError("staged part %s ended early" % p)
                got += k
        at += n
    return vec


def _raw_buffer(vec):
    # Zero-copy view of an R raw vector's memory (never bytes(vec)).
    from rpy2.rinterface_lib import openrlib
    from rpy2.rinterface_lib._rinterface_capi import ffi
    cdata = vec.__sexp__._cdata
    return ffi.buffer(openrlib.rlib.RAW(cdata), openrlib.rlib.Rf_xlength(cdata))


def _text(b64):
    return base64.b64decode(b64).decode("utf-8") if b64 else ""


def _python_answer(target, req_raw):
    """A Python target's answer to one request, as an R list."""
    import rpy2.rinterface as ri
    try:
        try:
            mod = importlib.import_module("dbrxr_" + target)
        except ImportError as e:
            raise TargetError("unknown_target", "This cluster's dbrxr has no target '%s' (%s)." % (target, e))
        req = from_r(ri.baseenv["unserialize"](req_raw))
        ans = {"status": "ok", "value": mod.handle(req)}
    except TargetError as e:
        err = {"class": e.cls, "message": e.message}
        err.update(e.fields)
        ans = {"status": "error", "error": err}
    except KeyboardInterrupt:
        raise
    except Exception as e:
        ans = {"status": "error", "error": {
            "class": "python", "message": error_text(e),
            "traceback": traceback.format_exc(limit=20)}}
    return to_r(ans)


def error_text(e):
    """An exception as one message for R: its type and text; for a Java
    exception (Py4JJavaError), the innermost cause without the JVM's stack
    frames, which run to hundreds of lines (they stay in the traceback)."""
    msg = str(e).strip()
    name = type(e).__name__
    if not msg:
        return name
    lines = msg.splitlines()
    if not any(l.startswith("\tat ") for l in lines):
        return "%s: %s" % (name, msg)
    # Blocks of text between frames: each starts with an exception's headline.
    blocks, cur = [], []
    for line in lines:
        if line.startswith("\tat ") or (line.lstrip().startswith("... ") and line.rstrip().endswith("more")):
            if cur:
                blocks.append(" ".join(cur))
                cur = []
        elif line.strip():
            cur.append(line.strip().lstrip(": ").strip())
    if cur:
        blocks.append(" ".join(cur))
    causes = [b[len("Caused by:"):].strip() for b in blocks if b.startswith("Caused by:")]
    root = causes[-1] if causes else (blocks[1] if len(blocks) > 1 else blocks[0])
    return "%s: %s" % (name, root)


def object_cache():
    """The R dispatcher's object cache (an environment: hash -> object)."""
    env = _state.get("r")
    if env is None:
        raise TargetError("internal", "The R dispatcher is not loaded in this context.")
    return env.find("cache")


def cached_object(hash_):
    """An object of the dispatcher's cache; need_object when it is not there."""
    import rpy2.rinterface as ri
    cache = object_cache()
    if not ri.baseenv["exists"](hash_, envir=cache, inherits=False)[0]:
        raise TargetError("need_object", "The model is not in this context any more.", hash=hash_)
    return ri.baseenv["get"](hash_, envir=cache)


def serialize_object(obj):
    """An R object's serialize() bytes (native byte order, as R's client writes them)."""
    return bytes(_raw_buffer(_serialize(obj)))


def _serialize(value):
    import rpy2.rinterface as ri
    return ri.baseenv["serialize"](value, ri.NULL, xdr=ri.BoolSexpVector([False]))


def _answer_raw(target, req_raw):
    """The serialized answer (an R raw vector) to a request of `target`."""
    if target == "r":
        return _state["r"].find("dispatch_raw")(req_raw)
    ans = _python_answer(target, req_raw)
    try:
        return _serialize(ans)
    except Exception as e:  # e.g. a value nested too deep for R's C stack
        return _serialize(to_r({"status": "error", "error": {
            "class": "python", "message": "The answer could not be serialized: %s" % str(e).strip()}}))


def _answer(target, req_b64, req_paths, result_path, inline_max):
    """Run one request on the R thread and return its marker (kind, payload).
    The request is inline (base64) or staged as one or more parts,
    concatenated in order; the serialized answer is inline when it has at most
    `inline_max` bytes, else written to `result_path`."""
    if req_paths:
        local = [map_path(p) for p in req_paths]
        missing = [p for p, l in zip(req_paths, local) if not os.path.exists(l)]
        if missing:
            return "NOFILE", urlencode({"path": missing[0]})

    def work():
        if req_paths:
            raw = _raw_from_files(local)
        else:
            raw = _raw_from_bytes(base64.b64decode(req_b64))
        buf = _raw_buffer(_answer_raw(target, raw))
        n = len(buf)
        if n <= inline_max or not result_path:
            return "INLINE", base64.b64encode(buf).decode("ascii")
        out = map_path(result_path)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out + ".part", "wb") as f:
            f.write(buf)
        os.replace(out + ".part", out)
        return "FILE", urlencode({"path": result_path, "size": n})

    return run_r(work)


# Answers of recent request ids, so a request the client sent again (its
# execute or status poll was lost on the way) is answered without running
# twice. Bounded by count and by bytes; per context, as this module is.
_ANSWERS_MAX = 64
_ANSWERS_MAX_BYTES = 32 << 20
_answers = collections.OrderedDict()


def _remember(request_id, answer):
    _answers[request_id] = answer
    _answers.move_to_end(request_id)
    size = sum(len(a[1]) for a in _answers.values())
    while len(_answers) > _ANSWERS_MAX or (size > _ANSWERS_MAX_BYTES and len(_answers) > 1):
        _, old = _answers.popitem(last=False)
        size -= len(old[1])


# Records of requests on the driver, which every context of the cluster
# shares: a request whose context was lost (evicted, killed) is sent again to
# a new context, which answers from the record instead of running it twice,
# or says it may have run when it started and never finished. Records need to
# outlive a context's process, not the machine: they go to /dev/shm (tmpfs)
# when it has room, else to the temporary directory; reads look in both.
# They are on every request's path, so they cost two syscalls-worth each: a
# request is claimed by creating its empty record (O_EXCL: the create is also
# the look-up, ~8 us), and its answer replaces it (write + rename, ~30 us);
# the roots are checked for room now and then, not per request.
_RECORDS_MAX = 512
_SHM_MIN_FREE = 64 << 20
_ROOTS_TTL = 10.0
_record_dirs = {"known": set(), "writes": 0, "roots": None, "roots_at": 0.0}


def _record_roots():
    import time
    now = time.monotonic()
    if _record_dirs["roots"] is not None and now - _record_dirs["roots_at"] < _ROOTS_TTL:
        return _record_dirs["roots"]
    roots = []
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize >= _SHM_MIN_FREE and os.access("/dev/shm", os.W_OK):
            roots.append(os.path.join("/dev/shm", "dbrxr-answers"))
    except OSError:
        pass
    roots.append(os.path.join(tempfile.gettempdir(), "dbrxr-answers"))
    _record_dirs.update(roots=roots, roots_at=now)
    return roots


def _all_record_roots():
    """Where records may be: both roots, whether or not /dev/shm has room now."""
    return [os.path.join("/dev/shm", "dbrxr-answers"),
            os.path.join(tempfile.gettempdir(), "dbrxr-answers")]


def _record_session():
    result = _state["result"]  # <root>/sessions/<session id>/result-<rid>.bin
    if not result or "/" not in result:
        return None
    return result.rsplit("/", 2)[-2]


def _parse_record(text):
    kind, _, payload = text.partition(" ")
    # An empty record is a claim: the request started and has no answer yet.
    return (kind or "STARTED"), payload


def _read_record_at(path):
    try:
        with open(path) as f:
            return _parse_record(f.read())
    except OSError:
        return None


def _record_dir(root, session):
    d = os.path.join(root, session)
    if d not in _record_dirs["known"]:
        _prune_records(root)
        os.makedirs(d, exist_ok=True)
        _record_dirs["known"].add(d)
    return d


def _claim_record(request_id, session):
    """Claim `request_id` of `session` for this context: (None, path) when it
    is ours to run (its empty record now exists at `path`), else (the record
    found (kind, payload), None). A request with no session (no result path),
    or whose record cannot be written, runs unrecorded: (None, None)."""
    if session is None:
        return None, None
    here = _record_roots()[0]
    for root in _all_record_roots():
        if root != here:
            found = _read_record_at(os.path.join(root, session, request_id))
            if found is not None:
                return found, None
    path = os.path.join(here, session, request_id)
    try:
        _record_dir(here, session)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return _read_record_at(path) or ("STARTED", ""), None
    except OSError:
        # No record can be written (a full or read-only disk): run it
        # unrecorded, as before records existed.
        _record_dirs["known"].discard(os.path.dirname(path))
        return None, None
    os.close(fd)
    return None, path


def _write_record(path, kind, payload=""):
    """Replace the claim at `path` (from _claim_record) with the answer."""
    if path is None:
        return
    try:
        d = os.path.dirname(path)
        if d not in _record_dirs["known"]:
            _record_dir(os.path.dirname(d), os.path.basename(d))
        fd = os.open(path + ".part", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            os.write(fd, ("%s %s" % (kind, payload)).encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(path + ".part", path)
        # The directory is counted now and then, not on every write.
        _record_dirs["writes"] += 1
        if _record_dirs["writes"] % 64 == 0:
            names = os.listdir(d)
            if len(names) > _RECORDS_MAX:
                old = sorted(names, key=lambda n: os.path.getmtime(os.path.join(d, n)))
                for n in old[:len(names) // 2]:
                    os.remove(os.path.join(d, n))
    except OSError:
        _record_dirs["known"].discard(os.path.dirname(path))


def _prune_records(root, max_age=86400):
    """Records of sessions untouched for a day go (sessions end; their
    directories on the driver's disk are not told)."""
    import shutil
    import time
    try:
        for name in os.listdir(root):
            p = os.path.join(root, name)
            if time.time() - os.path.getmtime(p) > max_age:
                shutil.rmtree(p, ignore_errors=True)
    except OSError:
        pass


def _drop_record(path):
    if path is None:
        return
    try:
        os.remove(path)
    except OSError:
        pass


def call_once(request_id, target, req_b64, req_paths_b64, result_path_b64, inline_max,
              progress_b64="", root_b64=""):
    """Run request `request_id` for `target` once: a repeat gets the stored
    answer. Staged parts arrive as base64 of newline-separated paths; the
    answer goes to `result_path` when large, progress reports to
    `progress_path`; `root` is the staging location."""
    if not _state["ready"]:
        _say("NOBOOT")
        return
    with _lock:
        seen = _answers.get(request_id)
    if seen is not None:
        _state["replays"] = _state.get("replays", 0) + 1
        _say(*seen)
        return
    paths = [p for p in _text(req_paths_b64).split("\n") if p]
    result_path = _text(result_path_b64)
    _state.update(progress=_text(progress_b64) or None, cancel=[], result=result_path,
                  root=_text(root_b64) or None)
    try:
        record, claim = _claim_record(request_id, _record_session())
        if record is not None:
            _say(*(record if record[0] != "STARTED" else ("MAYRAN",)))
            return
        answer = _answer(target, req_b64, paths, result_path, inline_max)
        # Written before the answer is said: once the command ends, the
        # context may be evicted at any moment, and a request sent again to a
        # new one must find the answer, not an empty claim.
        if answer[0] == "NOFILE":
            _drop_record(claim)
        else:
            _write_record(claim, *answer)
    finally:
        _state.update(progress=None, cancel=[], result=None)
    if answer[0] != "NOFILE":
        with _lock:
            _remember(request_id, answer)
    _say(*answer)


# ---- outside a command: job runners, a pyfunc in a fresh Python ---------------------------

def answer_file(target, request_path, answer_path, dispatcher_path=None, root=None):
    """Answer the serialized request in `request_path` as a command would,
    writing the serialized answer to `answer_path` (write, then rename).
    `root`: the staging location (for targets that stage objects)."""
    _state.update(result=answer_path, root=root or _state["root"])
    if not _state["ready"] and target == "r":
        src_path = dispatcher_path or os.path.join(module_dir(), "dispatcher.R")
        with open(src_path, "rb") as f:
            run_r(_load_dispatcher, f.read().decode("utf-8"))
        _state["ready"] = True

    def work():
        raw = _raw_from_files([map_path(request_path)])
        buf = _raw_buffer(_answer_raw(target, raw))
        out = map_path(answer_path)
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        with open(out + ".part", "wb") as f:
            f.write(buf)
        os.replace(out + ".part", out)
        return len(buf)

    return run_r(work)
