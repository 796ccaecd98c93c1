#!/usr/bin/env python3
"""Conformance: the official databricks-sdk for Python, unchanged, against dbrxr-local.

Usage: test_sdk.py --binary PATH [--counts FILE]

Starts the binary (TERMINATED, with a start delay), reads its URL from the first
stdout line, and runs the checks below through `WorkspaceClient(auth_type="pat")`.
Prints one line per check and writes "passed failed skipped" to FILE.
"""
import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
import traceback

TOKEN = "dapi-conformance-token"
CLUSTER = "local-cluster"

results = {"passed": 0, "failed": 0, "skipped": 0}


def check(name, fn, *, skip=None):
    if skip:
        results["skipped"] += 1
        print(f"SKIP {name}: {skip}", flush=True)
        return None
    t0 = time.monotonic()
    try:
        out = fn()
    except Exception:  # noqa: BLE001 - every failure is a failed check
        results["failed"] += 1
        print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
        return None
    results["passed"] += 1
    print(f"ok   {name} ({time.monotonic() - t0:.2f}s)", flush=True)
    return out


def start(binary, state_dir):
    proc = subprocess.Popen(
        [binary, "--port", "0", "--token", TOKEN, "--cluster-id", CLUSTER,
         "--cluster-state", "TERMINATED", "--start-delay-ms", "1500", "--state-dir", state_dir],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline().strip()
    prefix = "dbrxr-local listening on "
    if not first.startswith(prefix):
        proc.kill()
        raise RuntimeError(f"unexpected first line from {binary}: {first!r}; stderr: {proc.stderr.read()}")
    return proc, first[len(prefix):]


def jobs_cases(w):
    """Jobs API 2.2 through the SDK's own waiters: submit().result(), create,
    run_now, cancel_run, get_run_output."""
    import datetime
    from databricks.sdk.service import jobs

    script = (b"import sys, time\n"
              b"print('args', sys.argv[1:])\n"
              b"if sys.argv[1:2] == ['sleep']: time.sleep(60)\n"
              b"if sys.argv[1:2] == ['fail']: raise ValueError('job failed on purpose')\n")
    w.dbfs.upload("/tmp/conformance/job.py", io.BytesIO(script), overwrite=True)

    def task(*params):
        return jobs.SubmitTask(task_key="main", existing_cluster_id=CLUSTER,
                               spark_python_task=jobs.SparkPythonTask(
                                   python_file="dbfs:/tmp/conformance/job.py", parameters=list(params)))

    five = datetime.timedelta(minutes=5)

    def submit_result():
        run = w.jobs.submit(run_name="conformance", tasks=[task("hello")],
                            idempotency_token="conformance-1").result(timeout=five)
        assert run.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED, run.state
        assert run.state.result_state == jobs.RunResultState.SUCCESS, run.state
        assert run.status.state == jobs.RunLifecycleStateV2State.TERMINATED, run.status
        again = w.jobs.submit(run_name="conformance", tasks=[task("hello")],
                              idempotency_token="conformance-1").response.run_id
        assert again == run.run_id, (again, run.run_id)
        return run
    run = check("jobs.submit(...).result() runs a spark_python_task; the same idempotency_token gives the same run",
                submit_result)

    def output():
        out = w.jobs.get_run_output(run.tasks[0].run_id)
        assert "args ['hello']" in out.logs, out.logs
        assert out.metadata.state.result_state == jobs.RunResultState.SUCCESS
        try:
            w.jobs.get_run_output(run.run_id)
        except Exception as e:
            assert "multiple tasks" in str(e), e
        else:
            raise AssertionError("get_run_output of a multi-task run must fail")
    check("jobs.get_run_output of the task run: logs and metadata", output, skip=None if run else "no run")

    def failed():
        r = w.jobs.submit(run_name="fails", tasks=[task("fail")]).result(timeout=five)
        assert r.state.result_state == jobs.RunResultState.FAILED, r.state
        out = w.jobs.get_run_output(r.tasks[0].run_id)
        assert out.error == "ValueError: job failed on purpose", out.error
        assert "Traceback" in out.error_trace, out.error_trace
    check("a failing task: FAILED, get_run_output error and error_trace", failed)

    def create_run_now_cancel():
        created = w.jobs.create(name="conformance-job", tasks=[
            jobs.Task(task_key="main", existing_cluster_id=CLUSTER,
                      spark_python_task=jobs.SparkPythonTask(python_file="dbfs:/tmp/conformance/job.py",
                                                              parameters=["sleep"]))],
            schedule=jobs.CronSchedule(quartz_cron_expression="0 0 2 * * ?", timezone_id="Europe/London",
                                       pause_status=jobs.PauseStatus.PAUSED))
        job = w.jobs.get(created.job_id)
        assert job.settings.name == "conformance-job", job.settings
        assert job.settings.schedule.pause_status == jobs.PauseStatus.PAUSED
        assert created.job_id in [j.job_id for j in w.jobs.list(name="conformance-job")]
        started = w.jobs.run_now(created.job_id)
        deadline = time.monotonic() + 30
        while w.jobs.get_run(started.response.run_id).state.life_cycle_state != jobs.RunLifeCycleState.RUNNING:
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.2)
        t0 = time.monotonic()
        r = w.jobs.cancel_run(started.response.run_id).result(timeout=five)
        assert time.monotonic() - t0 < 5, time.monotonic() - t0
        assert r.state.result_state == jobs.RunResultState.CANCELED, r.state
        assert r.trigger == jobs.TriggerType.ONE_TIME and r.run_type == jobs.RunType.JOB_RUN, r
        runs = list(w.jobs.list_runs(job_id=created.job_id))
        assert [x.run_id for x in runs] == [started.response.run_id], runs
        w.jobs.delete(created.job_id)
        try:
            w.jobs.get(created.job_id)
        except Exception as e:
            assert "does not exist" in str(e), e
        else:
            raise AssertionError("a deleted job is still there")
    check("jobs.create, get, list, run_now, cancel_run (CANCELED), list_runs, delete", create_run_now_cancel)

    def task_uses_dbfs_paths():
        # Python written for Databricks opens /dbfs and /Volumes paths; the
        # files are those of the DBFS and Files APIs.
        w.files.upload("/Volumes/main/default/vol/conformance/in.txt", io.BytesIO(b"from the Files API"),
                       overwrite=True)
        w.dbfs.upload("/tmp/conformance/paths.py", io.BytesIO(
            b"text = open('/Volumes/main/default/vol/conformance/in.txt').read()\n"
            b"with open('/dbfs/tmp/conformance/x.txt', 'w') as f:\n"
            b"    f.write(text + ', through /dbfs')\n"), overwrite=True)
        t = jobs.SubmitTask(task_key="main", existing_cluster_id=CLUSTER,
                            spark_python_task=jobs.SparkPythonTask(python_file="dbfs:/tmp/conformance/paths.py"))
        r = w.jobs.submit(run_name="paths", tasks=[t]).result(timeout=five)
        assert r.state.result_state == jobs.RunResultState.SUCCESS, (r.state, w.jobs.get_run_output(r.tasks[0].run_id).logs)
        with w.dbfs.download("/tmp/conformance/x.txt") as f:
            assert f.read() == b"from the Files API, through /dbfs"
    check("a spark_python_task reads /Volumes/... and writes /dbfs/tmp/...; the APIs see the same files",
          task_uses_dbfs_paths)

    def unknown_run():
        try:
            w.jobs.get_run(123)
        except Exception as e:
            assert "does not exist" in str(e), e
            return
        raise AssertionError("an unknown run id must fail")
    check("jobs.get_run of an unknown run fails with 'does not exist'", unknown_run)


def language_cases(w, rpy2, spark):
    """Contexts in each language of a Databricks cluster: python, sql (on the
    context's Spark session), r (the context's own R); scala is refused."""
    from databricks.sdk.service.compute import CommandStatus, Language, ResultType
    ce = w.command_execution

    def in_context(language, command):
        ctx = ce.create_and_wait(cluster_id=CLUSTER, language=language)
        try:
            return ce.execute_and_wait(cluster_id=CLUSTER, context_id=ctx.id, language=language, command=command)
        finally:
            ce.destroy(cluster_id=CLUSTER, context_id=ctx.id)

    def python():
        r = in_context(Language.PYTHON, "sum(range(11))")
        assert r.results.result_type == ResultType.TEXT and r.results.data == "Out[1]: 55", r.results
    check("a python context", python)

    def r_context():
        r = in_context(Language.R, "sum(1:10)")
        assert r.status == CommandStatus.FINISHED, r.status
        assert r.results.result_type == ResultType.TEXT, r.results
        assert r.results.data == "[1] 55", repr(r.results.data)
        e = in_context(Language.R, "stop('on purpose')")
        assert e.results.result_type == ResultType.ERROR, e.results
        assert "on purpose" in e.results.summary and "on purpose" in e.results.cause, e.results
    check("an r context: sum(1:10) is \"[1] 55\"; stop() an error result", r_context,
          skip=None if rpy2 else "the cluster's Python has no rpy2")

    def sql_context():
        r = in_context(Language.SQL, "SELECT 1 AS one, 'a' AS s")
        assert r.status == CommandStatus.FINISHED, r.status
        assert r.results.result_type == ResultType.TABLE, r.results
        assert r.results.data == [[1, "a"]], r.results.data
        assert [c["name"] for c in r.results.schema] == ["one", "s"], r.results.schema
    check("a sql context: SELECT gives a table result", sql_context,
          skip=None if spark else "the cluster's Python has no PySpark")

    def scala():
        try:
            ce.create(cluster_id=CLUSTER, language=Language.SCALA)
        except Exception as e:  # noqa: BLE001 - the service's 1.2 error
            assert "scala" in str(e) and "not supported" in str(e), e
            return
        raise AssertionError("a scala context was created")
    check("a scala context is refused with a clear message", scala)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--counts")
    args = ap.parse_args()

    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.compute import CommandStatus, Language, ResultType, State

    rpy2 = subprocess.run(["/usr/bin/python3", "-c", "import rpy2.rinterface"],
                          capture_output=True).returncode == 0

    # What the cluster's contexts run (the binary's default: DBRXR_PYTHON, else python3).
    def cluster_python_has(module):
        python = os.environ.get("DBRXR_PYTHON") or "python3"
        return subprocess.run([python, "-c", "import " + module], capture_output=True).returncode == 0
    with tempfile.TemporaryDirectory() as state_dir:
        proc, url = start(args.binary, state_dir)
        try:
            w = WorkspaceClient(host=url, token=TOKEN, auth_type="pat")
            ce = w.command_execution

            def terminated():
                c = w.clusters.get(CLUSTER)
                assert c.state == State.TERMINATED, c.state
                assert c.cluster_id == CLUSTER
            check("clusters.get of a TERMINATED cluster", terminated)

            def unknown_cluster():
                try:
                    w.clusters.get("nope")
                except Exception as e:  # the SDK maps this to NotFound
                    assert "does not exist" in str(e), e
                    assert type(e).__name__ in ("NotFound", "ResourceDoesNotExist"), type(e)
                    return
                raise AssertionError("no error for an unknown cluster")
            check("clusters.get of an unknown cluster is NotFound", unknown_cluster)

            def ensure():
                w.clusters.ensure_cluster_is_running(CLUSTER)
                assert w.clusters.get(CLUSTER).state == State.RUNNING
            check("clusters.ensure_cluster_is_running from TERMINATED", ensure)

            def bad_token():
                bad = WorkspaceClient(host=url, token="wrong", auth_type="pat")
                try:
                    bad.clusters.get(CLUSTER)
                except Exception as e:
                    assert "Invalid access token" in str(e), e
                    assert type(e).__name__ == "PermissionDenied", type(e)
                    return
                raise AssertionError("a wrong token was accepted")
            check("a wrong token is PermissionDenied", bad_token)

            ctx = check("command_execution.create_and_wait",
                        lambda: ce.create_and_wait(cluster_id=CLUSTER, language=Language.PYTHON))
            ctx_id = ctx.id if ctx else None
            need_ctx = None if ctx_id else "no context"

            def run(code):
                return ce.execute_and_wait(cluster_id=CLUSTER, context_id=ctx_id,
                                           language=Language.PYTHON, command=code)

            def print1():
                r = run("print(1)")
                assert r.status == CommandStatus.FINISHED, r.status
                assert r.results.result_type == ResultType.TEXT, r.results
                assert r.results.data == "1", repr(r.results.data)
            check("execute_and_wait print(1) gives data \"1\"", print1, skip=need_ctx)

            def div0():
                r = run("1/0")
                assert r.status == CommandStatus.FINISHED, r.status
                assert r.results.result_type == ResultType.ERROR, r.results
                assert "ZeroDivisionError" in r.results.summary, r.results.summary
                assert "division by zero" in r.results.cause, r.results.cause
            check("execute_and_wait 1/0 gives an error result with summary and cause", div0,
                  skip=need_ctx)

            def r_roundtrip():
                r = run("import rpy2.robjects as ro\nprint(ro.r('R.version.string')[0])")
                assert r.results.result_type == ResultType.TEXT, r.results
                assert r.results.data.startswith("R version"), r.results.data
            check("R through rpy2 in a context", r_roundtrip,
                  skip=need_ctx or (None if rpy2 else "/usr/bin/python3 has no rpy2"))

            def cancel():
                waiter = ce.execute(cluster_id=CLUSTER, context_id=ctx_id,
                                    language=Language.PYTHON, command="import time\ntime.sleep(60)")
                cmd_id = waiter.response.id
                deadline = time.monotonic() + 10
                while ce.command_status(cluster_id=CLUSTER, context_id=ctx_id,
                                        command_id=cmd_id).status != CommandStatus.RUNNING:
                    assert time.monotonic() < deadline, "never started"
                    time.sleep(0.05)
                t0 = time.monotonic()
                r = ce.cancel_and_wait(cluster_id=CLUSTER, context_id=ctx_id, command_id=cmd_id)
                assert r.status == CommandStatus.CANCELLED, r.status
                assert time.monotonic() - t0 < 15
                after = run("print('still alive')")
                assert after.results.data == "still alive", after.results
            check("execute of a long time.sleep, then cancel_and_wait", cancel, skip=need_ctx)

            payload = os.urandom(5 * 1024 * 1024 + 123)

            def dbfs_roundtrip():
                w.dbfs.upload("/tmp/conformance/big.bin", io.BytesIO(payload), overwrite=True)
                with w.dbfs.download("/tmp/conformance/big.bin") as f:
                    back = f.read()
                assert back == payload, (len(back), len(payload))
                assert w.dbfs.get_status("/tmp/conformance/big.bin").file_size == len(payload)
            check("dbfs.upload/download of 5 MiB (multi-block), byte-identical", dbfs_roundtrip)

            def files_roundtrip():
                path = "/Volumes/main/default/vol/conformance/x.bin"
                w.files.upload(path, io.BytesIO(payload), overwrite=True)
                back = w.files.download(path).contents.read()
                assert back == payload, (len(back), len(payload))
                names = [e.name for e in w.files.list_directory_contents("/Volumes/main/default/vol/conformance")]
                assert names == ["x.bin"], names
            check("files.upload/download of a /Volumes file, byte-identical", files_roundtrip)
            jobs_cases(w)
            language_cases(w, cluster_python_has("rpy2.rinterface"), cluster_python_has("pyspark"))

            def destroy():
                ce.destroy(cluster_id=CLUSTER, context_id=ctx_id)
                try:
                    ce.context_status(cluster_id=CLUSTER, context_id=ctx_id)
                except Exception as e:
                    assert "does not exist" in str(e), e
                    return
                raise AssertionError("the context still exists")
            check("command_execution.destroy", destroy, skip=need_ctx)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    line = f"{results['passed']} {results['failed']} {results['skipped']}"
    print(f"conformance: {results['passed']} passed, {results['failed']} failed, "
          f"{results['skipped']} skipped")
    if args.counts:
        with open(args.counts, "w") as f:
            f.write(line + "\n")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
