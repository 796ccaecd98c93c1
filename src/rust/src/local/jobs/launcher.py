# dbrxr local cluster: the driver of one spark_python_task run.
#
# Runs the task's file as `__main__` with sys.argv = [file, *parameters], as
# a Databricks job does. Like a notebook's context, it gets the local
# cluster's side of the platform contract (worker.py's _install_platform()):
# a Spark session the task makes with SparkSession.builder.getOrCreate() has
# the cluster's catalogs, and dbrxr's shipped code finds dbrxr_local_platform.
import importlib.util
import os
import runpy
import sys
import traceback


def _install_platform():
    path = os.environ.get("DBRXR_LOCAL_WORKER")
    if not path or not os.path.exists(path):
        return
    # worker.py points fd 1 at fd 2 when imported: both go to the task's log.
    spec = importlib.util.spec_from_file_location("dbrxr_local_worker", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod._install_platform()


def main():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: launcher.py PYTHON_FILE [PARAMETERS...]\n")
        return 2
    file = sys.argv[1]
    sys.argv = [file] + sys.argv[2:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(file)))
    _install_platform()
    try:
        runpy.run_path(file, run_name="__main__")
    except SystemExit:
        raise
    except BaseException as e:
        # The traceback starts at the task's file, as on a cluster.
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != file:
            tb = tb.tb_next
        traceback.print_exception(type(e), e, tb or e.__traceback__)
        sys.stderr.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
