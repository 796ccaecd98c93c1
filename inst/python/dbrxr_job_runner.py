"""dbrxr job runner: the `spark_python_task` of a job made by remote_job().

    python dbrxr_job_runner.py --target r --request PATH --answer PATH
        --code DIR [--root STAGING]

The request is a staged request of dbrxr's one protocol (R serialize() bytes
of the request list, content-addressed); DIR holds dbrxr's Python modules and
the R dispatcher, staged together. The runner puts DIR on sys.path and lets
the bootstrap answer the request exactly as a command would
(`dbrxr_bootstrap.answer_file`), then writes the answer to PATH (written
aside, then renamed). The R session that submitted the job may be gone: the
answer waits in staging for dbx_run_result().

The run fails (exit status 1) when the answer is an error, so the job's page
shows it; the answer is written first, so the R error still comes back.
"""
import argparse
import os
import sys


def _answer_status(answer_path):
    """`status` and the error message of a serialized answer, read by R."""
    import dbrxr_bootstrap as b

    def read():
        import rpy2.rinterface as ri
        con = ri.baseenv["file"](b.map_path(answer_path), "rb")
        try:
            raw = ri.baseenv["readBin"](con, "raw", os.path.getsize(b.map_path(answer_path)))
        finally:
            ri.baseenv["close"](con)
        val = ri.baseenv["unserialize"](raw)
        names = list(val.names) if val.names is not ri.NULL else []
        status = str(val[names.index("status")][0]) if "status" in names else "?"
        message = ""
        if status != "ok" and "error" in names:
            err = val[names.index("error")]
            en = list(err.names) if err.names is not ri.NULL else []
            if "message" in en:
                message = str(err[en.index("message")][0])
        return status, message

    return b.run_r(read)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="dbrxr_job_runner")
    ap.add_argument("--target", default="r")
    ap.add_argument("--request", required=True)
    ap.add_argument("--answer", required=True)
    ap.add_argument("--code", required=True)
    ap.add_argument("--root")
    # What the R side delivers the answer as (read back by dbx_run_result()).
    ap.add_argument("--verb")
    ap.add_argument("--output")
    args = ap.parse_args(argv)

    # This file is staged with the other modules: the platform module is
    # importable before the code directory is on sys.path.
    import dbrxr_platform
    code = dbrxr_platform.file_path(args.code)
    sys.path.insert(0, code)
    import dbrxr_bootstrap as b

    n = b.answer_file(args.target, args.request, args.answer,
                      dispatcher_path=os.path.join(code, "dispatcher.R"), root=args.root)
    status, message = _answer_status(args.answer)
    print("dbrxr: answered the %s request (%d bytes): %s" % (args.target, n, status), flush=True)
    if status != "ok":
        sys.stderr.write("dbrxr: the job's R code failed: %s\n" % (message or status))
        sys.stderr.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
