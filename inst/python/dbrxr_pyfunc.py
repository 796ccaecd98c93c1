"""An R model as an MLflow pyfunc. log() pickles an RModel() that holds no
state (cloudpickle stores it as a reference to this module's class, shipped
beside it in the model's code paths): the one way MLflow 2.11 (mlflow-skinny
of Databricks Runtime 15.4 LTS, without models-from-code) and MLflow 3 both
log and load. Models logged from code (this file as the model's code, by
earlier dbrxr versions) still load where MLflow has set_model().

The model's artifacts, written by dbrxr_mlflow.log():
  r_model  R serialize() bytes of the logged object: a dbrxr_model_bundle whose
           model is a `dbrxr_logged_model` (the R model or function, the
           predict() arguments, the postprocess function, the input prototype
           and the packages it needs) and whose session code holds
           predict.dbrxr_logged_model() and the user's own functions
  r_spec   JSON: the input columns with their R classes and factor levels, the
           R version and packages (see dbrxr_mlflow.r_spec())

predict() turns the pandas input into an R data frame with the prototype's
column classes and factor levels, runs predict() in embedded R (through
dbrxr_bootstrap.run_r: one R thread, rpy2's conversion rules kept, a stack of
known size) and returns a NumPy array (a vector) or a pandas DataFrame (a
matrix or data frame).
"""

import json
import os
import threading

import mlflow
import numpy as np
import pandas as pd

# Static R code: evaluated once per process into a private environment.
_R_GLUE = r"""
local({
  load_object <- function(path) unserialize(readBin(path, "raw", file.size(path)))

  # The logged model, its session code defined and packages loaded (again
  # before each use: two models may define the same names).
  prepare <- function(obj) {
    if (inherits(obj, "dbrxr_model_bundle")) {
      for (nm in names(obj$session)) assign(nm, obj$session[[nm]], envir = globalenv())
      obj <- obj$model
    }
    for (p in obj$packages) loadNamespace(p)
    obj
  }

  # Columns from Python (doubles or strings) as the prototype's classes.
  coerce_input <- function(proto, cols, n) {
    out <- lapply(names(proto), function(nm) {
      p <- proto[[nm]]
      x <- cols[[nm]]
      if (is.double(x)) x[is.nan(x)] <- NA
      if (is.factor(p)) return(factor(as.character(x), levels = levels(p), ordered = is.ordered(p)))
      if (inherits(p, "Date")) return(structure(floor(as.double(x)), class = "Date"))
      if (inherits(p, "POSIXct")) return(.POSIXct(as.double(x), tz = attr(p, "tzone")))
      if (is.integer(p)) return(as.integer(x))
      if (is.double(p)) return(as.double(x))
      if (is.logical(p)) return(as.logical(x))
      if (is.character(p)) return(as.character(x))
      x
    })
    names(out) <- names(proto)
    structure(out, class = "data.frame", row.names = .set_row_names(as.integer(n)))
  }

  score <- function(bundle, cols, n) {
    obj <- prepare(bundle)
    nd <- coerce_input(obj$prototype, cols, n)
    predict(obj, nd)
  }

  # The result as plain parts Python can read: list(kind, names, columns).
  flatten <- function(x) {
    if (inherits(x, "ranger.prediction")) x <- x$predictions
    if (is.data.frame(x)) return(list(kind = "frame", names = names(x), columns = lapply(x, column)))
    if (is.matrix(x)) {
      nm <- colnames(x) %||% as.character(seq_len(ncol(x)) - 1L)
      cols <- lapply(seq_len(ncol(x)), function(j) column(x[, j]))
      return(list(kind = "frame", names = nm, columns = cols))
    }
    if (is.atomic(x)) return(list(kind = "vector", names = NULL, columns = list(column(x))))
    stop(sprintf("predict() returned a %s, which is not a vector, matrix or data frame; ",
                 paste(class(x), collapse = "/")),
         "log the model with a `postprocess` function that makes it one.", call. = FALSE)
  }
  `%||%` <- function(a, b) if (is.null(a)) b else a
  column <- function(v) {
    if (is.factor(v)) return(as.character(v))
    if (inherits(v, "Date") || inherits(v, "POSIXct")) return(format(v))
    v <- as.vector(unclass(v))
    names(v) <- NULL
    v
  }
  environment()
})
"""

_glue = {"env": None}
_glue_lock = threading.Lock()


def _bootstrap():
    import dbrxr_bootstrap
    return dbrxr_bootstrap


def _r_glue():
    """The private R environment of the glue functions (on the R thread)."""
    import rpy2.rinterface as ri
    if _glue["env"] is None:
        _glue["env"] = ri.baseenv["eval"](ri.parse(_R_GLUE), ri.globalenv)
    return _glue["env"]


def _r_fn(name):
    return _r_glue().find(name)


# ---- pandas -> R ---------------------------------------------------------------------

def r_column(values, rtype):
    """A pandas column as an R vector of doubles or strings; the R side gives it
    the prototype's class."""
    import rpy2.rinterface as ri
    s = pd.Series(values)
    if rtype in ("factor", "character"):
        out = [None if (v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA) else str(v)
               for v in s.tolist()]
        return ri.StrSexpVector([ri.NA_Character if v is None else v for v in out])
    if rtype == "Date":
        d = pd.to_datetime(s)
        days = (d - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
        arr = np.asarray(days, dtype="float64")
    elif rtype == "POSIXct":
        d = pd.to_datetime(s, utc=True)
        secs = (d - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(seconds=1)
        arr = np.asarray(secs, dtype="float64")
    elif rtype == "logical":
        arr = np.asarray(pd.to_numeric(s.astype("object").where(s.notna(), np.nan)), dtype="float64")
    else:
        arr = np.asarray(pd.to_numeric(s), dtype="float64")
    arr = np.ascontiguousarray(arr, dtype="float64")
    return ri.FloatSexpVector.from_memoryview(memoryview(arr))


def r_columns(df, columns):
    """The input columns the model needs (a dbrxr_pyfunc spec's `columns`) as a
    named R list; a missing column is an error naming it."""
    import rpy2.rinterface as ri
    if not isinstance(df, pd.DataFrame):
        df = pd.DataFrame(df)
    missing = [c["name"] for c in columns if c["name"] not in df.columns]
    if missing:
        raise ValueError("The input has no column %s; the model needs %s."
                         % (", ".join(repr(m) for m in missing),
                            ", ".join(c["name"] for c in columns)))
    vals = [r_column(df[c["name"]], c["type"]) for c in columns]
    lst = ri.ListSexpVector(vals)
    lst.names = ri.StrSexpVector([c["name"] for c in columns])
    return lst, len(df)


# ---- R -> NumPy / pandas ---------------------------------------------------------------

def py_column(v):
    """An R atomic vector (no attributes but names) as a NumPy array."""
    import rpy2.rinterface as ri
    t = v.typeof
    R = ri.RTYPES
    if t == R.REALSXP:
        return np.array(v.memoryview(), dtype="float64", copy=True)
    if t == R.INTSXP:
        arr = np.array(v.memoryview(), dtype="int32", copy=True)
        na = arr == np.iinfo("int32").min
        if na.any():
            arr = arr.astype("float64")
            arr[na] = np.nan
        return arr
    if t == R.LGLSXP:
        vals = list(v)
        if any(x is ri.NA_Logical for x in vals):
            return np.array([None if x is ri.NA_Logical else bool(x) for x in vals], dtype=object)
        return np.array([bool(x) for x in vals], dtype=bool)
    if t == R.STRSXP:
        return np.array([None if x is ri.NA_Character else str(x) for x in v], dtype=object)
    raise TypeError("an R vector of type %s cannot be returned to Python" % t)


def py_result(flat):
    """flatten()'s list(kind, names, columns) as a NumPy array or DataFrame."""
    import rpy2.rinterface as ri
    parts = dict(zip(list(flat.names), list(flat)))
    cols = [py_column(c) for c in parts["columns"]]
    if str(parts["kind"][0]) == "vector":
        return cols[0]
    names = [str(n) for n in parts["names"]] if not isinstance(parts["names"], ri.NULLType) else None
    return pd.DataFrame(dict(zip(names, cols)), columns=names)


# ---- the pyfunc -------------------------------------------------------------------------

class RModel(mlflow.pyfunc.PythonModel):
    """predict() of an R model logged by dbrxr (remote_log_model() in R)."""

    def load_context(self, context):
        b = _bootstrap()
        b.ensure_r()
        with open(context.artifacts["r_spec"]) as f:
            self.spec = json.load(f)
        path = context.artifacts["r_model"]
        self.obj = b.run_r(lambda: _r_fn("load_object")(path))

    def predict(self, context, model_input, params=None):
        b = _bootstrap()
        spec = self.spec

        def run():
            cols, n = r_columns(model_input, spec["columns"])
            flat = _r_fn("flatten")(_r_fn("score")(self.obj, cols, n))
            return py_result(flat)
        return b.run_r(run)


# Models logged from code run this file as their code (MLflow >= 2.12 only).
if hasattr(mlflow.models, "set_model"):
    mlflow.models.set_model(RModel())
