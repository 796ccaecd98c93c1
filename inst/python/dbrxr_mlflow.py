"""dbrxr's MLflow target: log an R model as a pyfunc (dbrxr_pyfunc.py) and
register it; resolve `models:/name/version` and
`models:/name@alias` into the dispatcher's object cache for scoring; list
registered models.

Runs inside the execution context, so Python MLflow owns the registry's
credentials and uploads: tracking `databricks` and registry `databricks-uc`
with the credentials the cluster gives its processes (the Databricks
runtime's, or the local cluster's DATABRICKS_HOST and token: one code path).
The Unity Catalog rules (a three-level name whose catalog and schema exist, a
signature with inputs and outputs) are checked here too, before anything is
logged, so the user gets a classed error rather than MLflow's.

Requests (dicts from R lists; see R/mlflow.R):
  op "log":     name, hash, columns, input_example, alias, experiment, tags, library
  op "resolve": uri, bytes (also return the model's serialize() bytes)
  op "models":  name (optional: a model, or catalog.schema)
  op "versions": name
  op "alias":   name, alias, version (set or move)
  op "alias_delete": name, alias

Registry lookups that fail say what is missing, as their own classes:
"model_not_found", "version_not_found", "alias_not_found", "permission".
"""

import hashlib
import json
import os
import platform
import re
import shutil
import tempfile

import dbrxr_bootstrap as b

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_-]*$")
URI_RE = re.compile(r"^models:/([^/@]+)(?:/([0-9]+)|@([A-Za-z_][A-Za-z0-9_]*))$")

# R classes -> MLflow column types (the signature comes from the prototype).
R_TO_MLFLOW = {"double": "double", "integer": "long", "factor": "string",
               "character": "string", "logical": "boolean", "Date": "datetime",
               "POSIXct": "datetime"}

# (name, version) -> (hash, size): registry models already in this context.
_resolved = {}


def handle(req):
    with _bounded(req.get("time_left")):
        mlflow = _mlflow()
        op = req.get("op")
        if op == "log":
            return log(mlflow, req)
        if op == "resolve":
            return resolve(mlflow, req)
        if op == "models":
            return models(mlflow, req.get("name"))
        if op == "versions":
            return versions(mlflow, req)
        if op == "alias":
            return set_alias(mlflow, req)
        if op == "alias_delete":
            return delete_alias(mlflow, req)
        raise b.TargetError("input", "Unknown MLflow operation %r." % (op,))


# MLflow's HTTP client retries a failed call 7 times with exponential backoff
# (about 4 minutes), each attempt waiting up to 120 s. Within a call of
# `left` seconds (the caller's deadline; R/deadline.R), its retries and their
# waits end before it; without one, at most _UNBOUNDED_S.
_MLFLOW_VARS = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT",
                "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER")
_UNBOUNDED_S = 120.0


def mlflow_bounds(left):
    """MLflow's retry settings for a call that must end within `left` seconds:
    (max_retries, request_timeout, backoff_factor, backoff_jitter). Every
    attempt may wait `request_timeout` for an answer; the attempts and the
    waits between them (at most factor * 2^(n-1) + jitter) fit in `left`."""
    left = max(float(left), 1.0)
    timeout = int(max(1, min(120, left / 4)))
    factor, jitter = 1, 0.5
    retries, waited = 0, 0.0
    while retries < 7:
        wait = factor * 2 ** retries + jitter
        if (retries + 2) * timeout + waited + wait > left:
            break
        waited += wait
        retries += 1
    return retries, timeout, factor, jitter


class _bounded(object):
    def __init__(self, left):
        self.left = _UNBOUNDED_S if left is None else float(left)

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in _MLFLOW_VARS}
        values = mlflow_bounds(self.left)
        for k, v in zip(_MLFLOW_VARS, values):
            os.environ[k] = str(v)
        return self

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        return False


def _mlflow():
    try:
        import mlflow
    except ImportError as e:
        import sys
        raise b.TargetError(
            "unsupported",
            "MLflow is not installed in the cluster's Python (%s): %s" % (sys.executable, e),
            hint="Use a Databricks ML runtime, or install it as a cluster library "
                 "({\"pypi\": {\"package\": \"mlflow\"}}); on the local cluster: "
                 "%s -m pip install mlflow" % sys.executable)
    mlflow.set_tracking_uri("databricks")
    mlflow.set_registry_uri("databricks-uc")
    return mlflow


def _mlflow_error(e, what):
    """An MlflowException as a classed target error."""
    code = getattr(e, "error_code", "") or ""
    msg = getattr(e, "message", None) or str(e)
    if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in msg.lower() \
            or "does not exist" in msg.lower():
        return b.TargetError("not_found", "%s: %s" % (what, msg), error_code=code)
    if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        return b.TargetError("permission", "%s: %s" % (what, msg), error_code=code)
    return b.TargetError("mlflow", "%s: %s" % (what, msg), error_code=code)


def _is_missing(e):
    code = getattr(e, "error_code", "") or ""
    msg = (getattr(e, "message", None) or str(e)).lower()
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in msg \
        or "does not exist" in msg


def _lookup_error(client, e, name, version=None, alias=None):
    """Why a registry lookup failed, as a classed error: the model, its
    version or its alias is missing (asked in that order), or the registry
    refused."""
    code = getattr(e, "error_code", "") or ""
    if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        return b.TargetError("permission", "The registry refused access to %s: %s"
                             % (name, getattr(e, "message", None) or e), error_code=code, model=name)
    if not _is_missing(e):
        return _mlflow_error(e, "Could not read %s from the registry" % name)
    try:
        client.get_registered_model(name)
    except Exception as e2:
        if _is_missing(e2):
            return b.TargetError("model_not_found", "There is no registered model %s." % name,
                                 model=name)
        return _lookup_error(client, e2, name)  # the registry refused: permission, or MLflow's error
    if alias:
        return b.TargetError("alias_not_found", "Model %s has no alias '%s'." % (name, alias),
                             model=name, alias=alias)
    return b.TargetError("version_not_found", "Model %s has no version %s." % (name, version),
                         model=name, version=str(version))


def model_version(client, name, version=None, alias=None):
    """The ModelVersion a version number or an alias names, or a classed error."""
    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, str(version))
    except Exception as e:
        raise _lookup_error(client, e, name, version, alias)


# ---- R helpers (the context's R thread: handle() runs on it) ---------------------------

def _ri():
    import rpy2.rinterface as ri
    return ri


def _glue(name):
    import dbrxr_pyfunc
    return dbrxr_pyfunc._r_fn(name)


_R_FACTS = r"""
function(obj) {
  if (inherits(obj, "dbrxr_model_bundle")) obj <- obj$model
  list(r_version = paste(R.version$major, R.version$minor, sep = "."),
       packages = as.character(obj$packages), class = class(obj$model))
}
"""


def _facts(obj):
    """The R version here, and the logged object's packages and model class."""
    ri = _ri()
    f = ri.baseenv["eval"](ri.parse(_R_FACTS), ri.globalenv)
    v = f(obj)
    parts = dict(zip(list(v.names), list(v)))
    return {"r_version": str(parts["r_version"][0]),
            "packages": [str(p) for p in parts["packages"]],
            "class": [str(c) for c in parts["class"]]}


def _r_error_message(e):
    msg = str(e)
    try:
        ri = _ri()
        txt = ri.baseenv["geterrmessage"]()[0]
        if txt:
            msg = txt.strip()
    except Exception:
        pass
    return msg


# ---- log -------------------------------------------------------------------------

def check_name(name):
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise b.TargetError(
            "input", "'%s' is not a Unity Catalog model name." % (name,),
            hint="Use catalog.schema.model, e.g. main.crm.churn.")


def check_schema_exists(name):
    """The catalog and schema of a three-level name exist (Unity Catalog
    refuses to register otherwise): checked first, for a classed error."""
    import dbrxr_spark
    s = dbrxr_spark.session()
    schema = name.rsplit(".", 1)[0]
    if not dbrxr_spark.schema_exists(s, name):
        raise b.TargetError(
            "not_found", "The schema %s does not exist, so %s cannot be registered in it."
            % (schema, name),
            hint="Create it first, e.g. dbx_exec(\"spark.sql('CREATE SCHEMA IF NOT EXISTS %s')\")."
            % schema, schema=schema)


def signature_for(mlflow, columns, output):
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema
    inputs = Schema([ColSpec(R_TO_MLFLOW.get(c["type"], "string"), c["name"]) for c in columns])
    outputs = Schema(output)
    sig = ModelSignature(inputs=inputs, outputs=outputs)
    if sig.inputs is None or sig.outputs is None or not len(sig.inputs.inputs) \
            or not len(sig.outputs.inputs):
        raise b.TargetError(
            "input", "A Unity Catalog model needs a signature with inputs and outputs.",
            hint="Pass `prototype` (the input columns) and `input_example`.")
    return sig


def output_schema(pred):
    """Output column specs from predict() on the input example (pandas/NumPy)."""
    from mlflow.types.schema import ColSpec
    import pandas as pd

    def kind(arr):
        dt = getattr(arr, "dtype", None)
        if dt is None or dt == object:
            return "string"
        if dt.kind == "f":
            return "double"
        if dt.kind in ("i", "u"):
            return "long"
        if dt.kind == "b":
            return "boolean"
        return "string"
    if isinstance(pred, pd.DataFrame):
        return [ColSpec(kind(pred[c].to_numpy()), str(c)) for c in pred.columns]
    return [ColSpec(kind(pred))]


def conda_env(r_version, packages):
    import mlflow
    import numpy
    import pandas
    pins = ["mlflow==%s" % mlflow.__version__, "pandas==%s" % pandas.__version__,
            "numpy==%s" % numpy.__version__]
    try:
        import rpy2
        pins.append("rpy2==%s" % rpy2.__version__)
    except ImportError:
        pins.append("rpy2")
    deps = ["python=%s" % platform.python_version(), "pip", "r-base=%s" % r_version]
    deps += ["r-%s" % p.lower().replace(".", "") for p in packages]
    return {"name": "dbrxr-r-model", "channels": ["conda-forge"],
            "dependencies": deps + [{"pip": pins}]}


def _r_versions(packages):
    ri = _ri()
    out = {}
    for p in packages:
        try:
            out[p] = str(ri.baseenv["as.character"](
                ri.baseenv["getNamespaceVersion"](p))[0])
        except Exception:
            out[p] = None
    return out


def log(mlflow, req):
    name = req.get("name")
    check_name(name)
    check_schema_exists(name)
    columns = req.get("columns") or []
    if isinstance(columns, str):
        columns = json.loads(columns)
    hash_ = req["hash"]
    obj = b.cached_object(hash_)
    import dbrxr_pyfunc
    import pandas as pd

    # predict() on the input example: its failure is the user's R error, and
    # its value gives the output signature.
    example = req.get("input_example")
    if example is None:
        raise b.TargetError("input", "An input example is needed for the signature's outputs.")
    ex_flat = _glue("flatten")(example)
    example_df = dbrxr_pyfunc.py_result(ex_flat)
    if not isinstance(example_df, pd.DataFrame):
        example_df = pd.DataFrame({"x": example_df})
    example_df = example_df[[c["name"] for c in columns]]
    try:
        cols, n = dbrxr_pyfunc.r_columns(example_df, columns)
        pred = dbrxr_pyfunc.py_result(_glue("flatten")(_glue("score")(obj, cols, n)))
    except Exception as e:
        raise b.TargetError("predict_failed",
                            "predict() failed on the input example: %s" % _r_error_message(e),
                            remote_message=_r_error_message(e))
    # Unity Catalog serves one prediction per input row: a predict() that
    # summarizes (1 value for 10 rows) is refused before anything is logged.
    n_pred = len(pred) if hasattr(pred, "__len__") and not isinstance(pred, str) else 1
    if n_pred != n:
        raise b.TargetError("input",
                            "predict() returned %d value%s for the %d rows of the input example; "
                            "a registered model returns one prediction per input row."
                            % (n_pred, "" if n_pred == 1 else "s", n),
                            hint="Make the model's predict() return one value (or one row) per row of newdata.")
    sig = signature_for(mlflow, columns, output_schema(pred))

    facts = _facts(obj)
    r_version, packages = facts["r_version"], facts["packages"]
    spec = {"columns": columns, "r_version": r_version, "platform": platform.platform(),
            "packages": _r_versions(packages), "library": req.get("library"),
            "hash": hash_, "dbrxr_pyfunc": 1}

    model_bytes = b.serialize_object(obj)
    spec_json = json.dumps(spec, sort_keys=True)
    # The client's content hash, not these bytes: R's JIT compiles closures
    # once they have run, so the same object serializes differently later.
    key = hashlib.sha256((hash_ + spec_json + json.dumps(sig.to_dict(), sort_keys=True)).encode()).hexdigest()

    experiment = req.get("experiment") or "/Shared/dbrxr"
    client = mlflow.MlflowClient()
    try:
        exp = mlflow.set_experiment(experiment)
    except Exception as e:
        raise _mlflow_error(e, "Could not use the experiment %s" % experiment)

    tags = dict(req.get("tags") or {})
    reused = _find_logged(client, exp.experiment_id, key)
    try:
        if reused is not None:
            run_id, model_uri = reused
        else:
            run_id, model_uri = _log_new(mlflow, experiment, model_bytes, spec_json, sig,
                                         example_df, spec, packages, key, tags)
        mv = mlflow.register_model(model_uri, name, await_registration_for=300)
    except b.TargetError:
        raise
    except Exception as e:
        raise _mlflow_error(e, "Could not log and register %s" % name)
    version = str(mv.version)
    alias = req.get("alias")
    if alias:
        try:
            client.set_registered_model_alias(name, alias, version)
        except Exception as e:
            raise _mlflow_error(e, "Could not set the alias %s of %s" % (alias, name))
    try:  # dbx_model_versions() shows it without downloading the version's files
        client.set_model_version_tag(name, version, SIGNATURE_TAG, signature_text(sig))
    except Exception:
        pass
    _resolved[(name, version)] = (hashlib.sha256(model_bytes).hexdigest(), len(model_bytes))
    return {"name": name, "version": version, "run_id": run_id, "model_uri": model_uri,
            "alias": alias, "experiment": experiment, "reused": reused is not None,
            "inputs": _describe(sig.inputs), "outputs": _describe(sig.outputs),
            "registry": mlflow.get_registry_uri()}


def _describe(schema):
    """A schema's columns as "type" or "name (type)" strings."""
    out = []
    for c in schema.inputs:
        t = str(getattr(c.type, "name", c.type))
        out.append("%s (%s)" % (c.name, t) if c.name else t)
    return out


def _find_logged(client, experiment_id, key):
    """A finished run of this experiment that logged exactly these artifacts."""
    try:
        runs = client.search_runs([experiment_id],
                                  filter_string="tags.`dbrxr.artifacts` = '%s'" % key,
                                  max_results=1)
    except Exception:
        return None
    for r in runs:
        uri = r.data.tags.get("dbrxr.model_uri")
        if uri and r.info.status == "FINISHED":
            return r.info.run_id, uri
    return None


def _log_new(mlflow, experiment, model_bytes, spec_json, sig, example_df, spec, packages, key, tags):
    work = tempfile.mkdtemp(prefix="dbrxr-mlflow-")
    try:
        model_path = os.path.join(work, "model.bin")
        spec_path = os.path.join(work, "r_spec.json")
        with open(model_path, "wb") as f:
            f.write(model_bytes)
        with open(spec_path, "w") as f:
            f.write(spec_json)
        here = b.module_dir()
        import dbrxr_pyfunc
        with mlflow.start_run(run_name="dbrxr-" + spec["hash"][:12]) as run:
            info = mlflow.pyfunc.log_model(
                python_model=dbrxr_pyfunc.RModel(),
                artifacts={"r_model": model_path, "r_spec": spec_path},
                signature=sig,
                input_example=example_df,
                conda_env=conda_env(spec["r_version"], packages),
                **_where_and_code(mlflow, "model", [os.path.join(here, "dbrxr_pyfunc.py"),
                                                     os.path.join(here, "dbrxr_bootstrap.py")]))
            mlflow.set_tags(dict(tags, **{"dbrxr.artifacts": key, "dbrxr.model_uri": info.model_uri,
                                          "dbrxr.r_version": spec["r_version"]}))
        return run.info.run_id, info.model_uri
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _where_and_code(mlflow, path, code):
    """log_model()'s model path and code files, by the names this MLflow takes:
    `name` and `code_paths` in MLflow 3 (where `artifact_path` is deprecated),
    `artifact_path` and `code_path` in MLflow 2.11 (mlflow-skinny of
    Databricks Runtime 15.4 LTS)."""
    import inspect
    params = inspect.signature(mlflow.pyfunc.log_model).parameters
    where = {"name": path} if "name" in params else {"artifact_path": path}
    where["code_paths" if "code_paths" in params else "code_path"] = code
    return where


# ---- resolve -----------------------------------------------------------------------

def parse_uri(uri):
    m = URI_RE.match(uri or "")
    if not m:
        raise b.TargetError("input", "'%s' is not a registered model URI." % (uri,),
                            hint="Use models:/catalog.schema.model/<version> or models:/catalog.schema.model@<alias>.")
    return m.group(1), m.group(2), m.group(3)


def resolve(mlflow, req):
    """Load a registered R model into the dispatcher's cache; its hash and facts."""
    uri = req.get("uri")
    name, version, alias = parse_uri(uri)
    client = mlflow.MlflowClient()
    mv = model_version(client, name, version, alias)
    version = str(mv.version)
    ri = _ri()
    cache = b.object_cache()
    known = _resolved.get((name, version))
    want_bytes = bool(req.get("bytes"))
    data = None

    def here(hash_):
        return ri.baseenv["exists"](hash_, envir=cache, inherits=False)[0]

    def staged(hash_):
        return os.path.exists(b.map_path(b.cache_path(hash_)))

    if known is None or want_bytes or not here(known[0]) or not staged(known[0]):
        data = _download(mlflow, "models:/%s/%s" % (name, version), uri)
        known = (hashlib.sha256(data).hexdigest(), len(data))
        # Staged as well as cached: table jobs' executors and futures' worker
        # contexts read it from there (the same bytes, by their hash).
        if not staged(known[0]):
            b.stage_object(known[0], data)
        if not here(known[0]):
            obj = ri.baseenv["unserialize"](b._raw_from_bytes(data))
            ri.baseenv["assign"](known[0], obj, envir=cache)
        _resolved[(name, version)] = known
    facts = _facts(ri.baseenv["get"](known[0], envir=cache))
    out = {"name": name, "version": version, "hash": known[0], "size": float(known[1]),
           "path": b.cache_path(known[0]),
           "class": facts["class"], "packages": facts["packages"],
           "run_id": mv.run_id, "uri": uri}
    if want_bytes:
        out["bytes"] = data
    return out


def staged(uri):
    """The staged file of the R model a URI names now (no R needed: a job
    task resolves its recorded `models:/...@alias` this way at each run)."""
    mlflow = _mlflow()
    name, version, alias = parse_uri(uri)
    client = mlflow.MlflowClient()
    mv = model_version(client, name, version, alias)
    data = _download(mlflow, "models:/%s/%s" % (name, mv.version), uri)
    hash_ = hashlib.sha256(data).hexdigest()
    local = b.map_path(b.cache_path(hash_))
    return local if os.path.exists(local) else b.stage_object(hash_, data)


def _download(mlflow, version_uri, uri):
    work = tempfile.mkdtemp(prefix="dbrxr-mlflow-")
    try:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=version_uri, dst_path=work)
        except Exception as e:
            err = _mlflow_error(e, "Could not download %s" % uri)
            if err.cls == "not_found":  # the version exists (looked up first): its files are missing
                err.cls = "mlflow"
            raise err
        import yaml
        with open(os.path.join(local, "MLmodel")) as f:
            mlmodel = yaml.safe_load(f)
        arts = (mlmodel.get("flavors", {}).get("python_function", {}) or {}).get("artifacts") or {}
        rel = (arts.get("r_model") or {}).get("path")
        if not rel:
            raise b.TargetError("input", "%s is not an R model logged by dbrxr (it has no r_model artifact)." % uri)
        with open(os.path.join(local, rel), "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- models, versions, aliases --------------------------------------------------------

def _aliases_of(client, rm):
    """version -> [aliases] of a registered model (Unity Catalog's search
    results carry none: the model's own record does)."""
    out = {}
    al = getattr(rm, "aliases", None) or {}
    for a in al:
        v = al[a] if isinstance(al, dict) else getattr(a, "version", None)
        key = a if isinstance(al, dict) else getattr(a, "alias", str(a))
        out.setdefault(str(v), []).append(key)
    return out


def _registered(client, name):
    try:
        return client.get_registered_model(name)
    except Exception as e:
        if _is_missing(e):
            raise b.TargetError("model_not_found", "There is no registered model %s." % name, model=name)
        raise _lookup_error(client, e, name)


def _versions_of(client, name):
    try:
        vs = client.search_model_versions("name='%s'" % name.replace("'", "\\'"))
    except Exception as e:
        raise _lookup_error(client, e, name)
    return sorted(vs, key=lambda v: int(v.version))


def models(mlflow, name=None):
    client = mlflow.MlflowClient()
    rows = {"name": [], "version": [], "aliases": [], "status": [], "run_id": [],
            "created": [], "source": []}
    if name and name.count(".") == 2:
        check_name(name)
        regs = [_registered(client, name)]
    else:
        try:
            regs = client.search_registered_models(max_results=1000)
        except Exception as e:
            raise _mlflow_error(e, "Could not list registered models")
        if name:  # catalog.schema
            regs = [r for r in regs if r.name.rsplit(".", 1)[0] == name]
        regs = [_registered(client, r.name) for r in regs]
    for rm in regs:
        aliases = _aliases_of(client, rm)
        for mv in _versions_of(client, rm.name):
            rows["name"].append(rm.name)
            rows["version"].append(str(mv.version))
            rows["aliases"].append(",".join(sorted(aliases.get(str(mv.version), []))))
            rows["status"].append(str(mv.status))
            rows["run_id"].append(mv.run_id or "")
            rows["created"].append(float(mv.creation_timestamp or 0))
            rows["source"].append(mv.source or "")
    # Lists of one element would arrive as scalars: R rebuilds the columns.
    return {"n": len(rows["name"]), "columns": {k: v for k, v in rows.items()}}


SIGNATURE_TAG = "dbrxr.signature"


def signature_text(sig):
    """A signature as "wt: double, hp: double -> double"."""
    def part(schema):
        if schema is None:
            return "?"
        return ", ".join(("%s: %s" % (c.name, getattr(c.type, "name", c.type))) if c.name
                         else str(getattr(c.type, "name", c.type)) for c in schema.inputs)
    return "%s -> %s" % (part(sig.inputs), part(sig.outputs))


def _signature_of(mlflow, client, mv):
    """A version's signature: the tag remote_log_model() set, else read from
    its MLmodel file (a model logged by other clients), else ""."""
    # Search results carry no tags (ModelVersionSearch.tags is a method that
    # raises): the version's own record does.
    tags = getattr(mv, "tags", None)
    if not isinstance(tags, dict) or SIGNATURE_TAG not in tags:
        try:
            tags = client.get_model_version(mv.name, str(mv.version)).tags or {}
        except Exception:
            tags = {}
    if tags.get(SIGNATURE_TAG):
        return tags[SIGNATURE_TAG]
    try:
        from mlflow.models import Model
        sig = Model.load("models:/%s/%s" % (mv.name, mv.version)).signature
    except Exception:
        return ""
    return signature_text(sig) if sig is not None else ""


def versions(mlflow, req):
    name = req.get("name")
    check_name(name)
    client = mlflow.MlflowClient()
    rm = _registered(client, name)
    aliases = _aliases_of(client, rm)
    rows = {"version": [], "aliases": [], "run_id": [], "created": [], "status": [],
            "signature": []}
    for mv in _versions_of(client, name):
        v = str(mv.version)
        rows["version"].append(v)
        rows["aliases"].append(",".join(sorted(aliases.get(v, []))))
        rows["run_id"].append(mv.run_id or "")
        rows["created"].append(float(mv.creation_timestamp or 0))
        rows["status"].append(str(mv.status))
        rows["signature"].append(_signature_of(mlflow, client, mv))
    return {"n": len(rows["version"]), "columns": rows}


def _check_alias(alias):
    if not isinstance(alias, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", alias):
        raise b.TargetError("input", "'%s' is not an alias: letters, digits and underscores, "
                            "starting with a letter." % (alias,))


def _current(client, name, alias):
    """The version an alias points at now, or None."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except Exception:
        return None


def set_alias(mlflow, req):
    name, alias, version = req.get("name"), req.get("alias"), str(req.get("version"))
    check_name(name)
    _check_alias(alias)
    client = mlflow.MlflowClient()
    mv = model_version(client, name, version=version)  # the model and version exist
    before = _current(client, name, alias)
    try:
        client.set_registered_model_alias(name, alias, str(mv.version))
    except Exception as e:
        raise _lookup_error(client, e, name, version)
    return {"name": name, "alias": alias, "version": str(mv.version), "previous": before,
            "run_id": mv.run_id or ""}


def delete_alias(mlflow, req):
    name, alias = req.get("name"), req.get("alias")
    check_name(name)
    _check_alias(alias)
    client = mlflow.MlflowClient()
    mv = model_version(client, name, alias=alias)  # the model and alias exist
    try:
        client.delete_registered_model_alias(name, alias)
    except Exception as e:
        raise _lookup_error(client, e, name, alias=alias)
    return {"name": name, "alias": alias, "version": str(mv.version)}
