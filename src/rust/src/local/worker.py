# dbrxr local cluster: one execution context = one process running this file.
#
# Protocol (JSON lines): commands arrive on stdin as {"id", "n", "code"}; replies
# go to a private copy of the original stdout as {"ready": true, ...} once at start,
# then {"id", "status": "ok"|"error"|"cancelled", "data", "summary", "cause"}.
# fd 1 is pointed at fd 2 so stray C-level output cannot corrupt the protocol.
#
# Notebook semantics: common indentation removed, stdout/stderr captured, the
# value of a trailing expression shown as `Out[n]: repr`, exceptions reported
# with a one-line summary and a traceback. SIGINT cancels the running command;
# R code run through rpy2 is interrupted by setting R_interrupts_pending (R does
# not see Python's signal handler).
import ast
import ctypes
import io
import json
import linecache
import os
import signal
import sys
import textwrap
import threading
import traceback

_proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.__stdout__ = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)

_state = {"executing": False, "cancel": False}
_lock = threading.Lock()
_r_flag = None  # ctypes int bound to R_interrupts_pending once R is loaded


def _send(obj):
    _proto.write(json.dumps(obj) + "\n")
    _proto.flush()


def _on_sigint(signum, frame):
    with _lock:
        executing = _state["executing"]
        if executing:
            _state["cancel"] = True
    if executing:
        raise KeyboardInterrupt()


def _bind_r_flag():
    global _r_flag
    if _r_flag is not None or "rpy2.rinterface_lib.openrlib" not in sys.modules:
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


def _watch_signals(read_fd):
    while True:
        try:
            data = os.read(read_fd, 64)
        except InterruptedError:
            continue
        if not data:
            return
        if signal.SIGINT in data:
            with _lock:
                executing = _state["executing"]
                if executing:
                    _state["cancel"] = True
            if executing:
                _bind_r_flag()
                if _r_flag is not None:
                    _r_flag.value = 1


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


def _run(globals_, n, code):
    filename = "<command-%d>" % n
    source = textwrap.dedent(code)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    out = io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = out
    result = {"status": "ok"}
    try:
        with _lock:
            _state["executing"] = True
            _state["cancel"] = False
        tree = ast.parse(source, filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec"), globals_)
        _route_r_console()
        if last is not None:
            value = eval(compile(last, filename, "eval"), globals_)
            if value is not None:
                globals_["_"] = value
                out.write("Out[%d]: %r\n" % (n, value))
    except BaseException as exc:  # noqa: B902 - the user's code may raise anything
        with _lock:
            cancelled = _state["cancel"]
        if cancelled or isinstance(exc, KeyboardInterrupt):
            result = {"status": "cancelled"}
        elif isinstance(exc, SystemExit):
            result = {"status": "error", "summary": "SystemExit: %s" % (exc.code,),
                      "cause": "The command called exit(); the context keeps running."}
        else:
            summary, cause = _error_result(exc, filename)
            result = {"status": "error", "summary": summary, "cause": cause}
    finally:
        with _lock:
            _state["executing"] = False
            if _state["cancel"]:
                result = {"status": "cancelled"}
        sys.stdout, sys.stderr = saved
        _route_r_console()
        _bind_r_flag()
    text = out.getvalue()
    if text.endswith("\n"):
        text = text[:-1]
    result["data"] = text
    return result


def main():
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.signal(signal.SIGINT, _on_sigint)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=_watch_signals, args=(read_fd,), daemon=True).start()
    globals_ = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        import importlib.util
        rpy2 = importlib.util.find_spec("rpy2") is not None
    except Exception:
        rpy2 = False
    _send({"ready": True, "pid": os.getpid(), "python": sys.version.split()[0], "rpy2": rpy2})
    stdin = sys.stdin.buffer
    while True:
        try:
            line = stdin.readline()
        except KeyboardInterrupt:
            continue  # an interrupt that arrived between commands
        if not line:
            return
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        # rpy2 may install its own SIGINT handler when R starts: take it back.
        signal.signal(signal.SIGINT, _on_sigint)
        try:
            result = _run(globals_, int(msg.get("n", 0)), msg.get("code", ""))
        except KeyboardInterrupt:
            result = {"status": "cancelled", "data": ""}
        result["id"] = msg.get("id")
        while True:
            try:
                _send(result)
                break
            except KeyboardInterrupt:
                continue


if __name__ == "__main__":
    main()
