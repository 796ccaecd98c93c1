"""dbrxr bootstrap: installed once per execution context by the dbrxr R package.

It embeds R through rpy2 and keeps dbrxr's R dispatcher in a private R
environment. Every later command is one short call to `call()`, which moves
only R serialize() bytes: a request arrives inline (base64) or as a staged
file, the answer leaves inline (base64 on stdout) or as a file written to
staging. Nothing here converts values; R unserializes and serializes them.

Every answer is one line starting with MARKER so the client can find it among
whatever else the runtime prints: "DBRXR1:<KIND> <payload>", the payload being
base64 (INLINE) or form-encoded fields. Paths arrive base64-encoded so no
caller-supplied text is ever part of the command's source.
"""

import base64
import collections
import os
import platform
import sys
import threading
from urllib.parse import urlencode

MARKER = "DBRXR1"

_state = {"r": None, "ready": False}
_lock = threading.Lock()


def _say(kind, payload=""):
    sys.stdout.write("%s:%s %s\n" % (MARKER, kind, payload))
    sys.stdout.flush()


def map_path(path):
    """Cluster path of a staged file. On the local cluster DBFS and Volumes live
    under DBRXR_LOCAL_FS_ROOT; on Databricks /dbfs and /Volumes are FUSE mounts."""
    root = os.environ.get("DBRXR_LOCAL_FS_ROOT")
    if path.startswith("dbfs:/"):
        path = "/dbfs/" + path[len("dbfs:/"):].lstrip("/")
    if root and (path == "/dbfs" or path.startswith("/dbfs/")
                 or path.startswith("/Volumes/")):
        return os.path.join(root, path.lstrip("/"))
    return path


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
    import importlib
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


def setup(dispatcher_b64, install_rpy2=False):
    """Start R (once), load the dispatcher, report versions or why it cannot."""
    problem = _import_rpy2(install_rpy2)
    if problem is not None:
        _say("NORPY2", urlencode({
            "python": sys.executable, "python_version": platform.python_version(),
            "problem": problem}))
        return
    import rpy2
    import rpy2.rinterface as ri
    from rpy2.rinterface_lib import openrlib
    with _lock, openrlib.rlock:
        if not ri.embedded.isready():
            # This R serves large requests one after another: each leaves
            # tens of MB of garbage that R's default heap growth collects
            # with a full GC per chunk (a third of the scoring time). Faster
            # growth (?Memory) collects less often. R reads it at start only;
            # a value the cluster or the user set wins.
            if not os.environ.get("R_GC_MEM_GROW"):
                os.environ["R_GC_MEM_GROW"] = "3"
            ri.initr_simple()
        src = base64.b64decode(dispatcher_b64).decode("utf-8")
        # The dispatcher lives in its own environment, never in the global one.
        make_env = ri.baseenv["new.env"]
        env = make_env(parent=ri.globalenv)
        ri.baseenv["eval"](ri.parse(src), env)
        _state["r"] = env
        _state["ready"] = True
        info = env.find("dbrxr_info")()
        r_version = str(info[0][0])
    _say("READY", urlencode({
        "r_version": r_version, "rpy2_version": rpy2.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(), "pid": os.getpid()}))


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


def _answer(req_b64, req_paths, result_path, inline_max):
    """Run one request and return its marker (kind, payload). The request is
    inline (base64) or staged as one or more parts, concatenated in order; the
    serialized answer is inline when it has at most `inline_max` bytes, else
    written to `result_path`."""
    from rpy2.rinterface_lib import openrlib
    env = _state["r"]
    with _lock, openrlib.rlock:
        if req_paths:
            local = [map_path(p) for p in req_paths]
            missing = [p for p, l in zip(req_paths, local) if not os.path.exists(l)]
            if missing:
                return "NOFILE", urlencode({"path": missing[0]})
            if len(local) == 1:
                res = env.find("dispatch_file")(local[0])
            else:
                res = env.find("dispatch_raw")(_raw_from_files(local))
        else:
            res = env.find("dispatch_raw")(_raw_from_bytes(base64.b64decode(req_b64)))
        buf = _raw_buffer(res)
        n = len(buf)
        if n <= inline_max or not result_path:
            return "INLINE", base64.b64encode(buf).decode("ascii")
        local = map_path(result_path)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        tmp = local + ".part"
        with open(tmp, "wb") as f:
            f.write(buf)
        os.replace(tmp, local)
    return "FILE", urlencode({"path": result_path, "size": n})


def call(req_b64, req_path_b64, result_path_b64, inline_max):
    """Run one request (no request id: never answered from the cache)."""
    if not _state["ready"]:
        _say("NOBOOT")
        return
    req_path = _text(req_path_b64)
    _say(*_answer(req_b64, [req_path] if req_path else [], _text(result_path_b64), inline_max))


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


def call_once(request_id, req_b64, req_paths_b64, result_path_b64, inline_max):
    """Run request `request_id` once: a repeat gets the stored answer. Staged
    parts arrive as base64 of newline-separated paths."""
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
    answer = _answer(req_b64, paths, _text(result_path_b64), inline_max)
    if answer[0] != "NOFILE":
        with _lock:
            _remember(request_id, answer)
    _say(*answer)
