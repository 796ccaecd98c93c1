# make demo: fit a few models locally, score them on the local cluster (or the
# workspace you have configured), and compare with local predict().
suppressPackageStartupMessages(library(dbrxr))

conn <- dbx_default_connection()
print(conn)
cat("\n")

set.seed(42)
n <- 5000
train <- data.frame(
  x1 = rnorm(n), x2 = runif(n),
  grp = factor(sample(c("a", "b", "c"), n, replace = TRUE)),
  day = as.Date("2026-01-01") + sample(0:364, n, replace = TRUE)
)
train$y <- 2 * train$x1 - train$x2 + as.integer(train$grp) + rnorm(n)
train$cls <- factor(ifelse(train$y > 2, "high", "low"))
newdata <- train[sample(n, 1000), ]
newdata$x1[c(3, 7)] <- NA  # NA rows survive the round trip

models <- list(
  "lm"                      = list(fit = lm(y ~ x1 + x2 + grp + day, data = train), type = NULL),
  "glm (binomial)"          = list(fit = glm(cls ~ x1 + x2 + grp, data = train, family = binomial),
                                   type = "response"),
  # An odd number of trees: predict.randomForest breaks tied votes at random.
  "randomForest (classes)"  = list(fit = randomForest::randomForest(cls ~ x1 + x2 + grp,
                                        data = stats::na.omit(train), ntree = 51), type = "class")
)
if (requireNamespace("ranger", quietly = TRUE)) {
  models[["ranger (classes)"]] <- list(
    fit = ranger::ranger(cls ~ x1 + x2 + grp, data = train, num.trees = 51, seed = 1),
    type = NULL)
}

preview <- function(x) {
  if (inherits(x, "ranger.prediction")) x <- x$predictions
  x <- as.vector(x)
  paste(format(utils::head(x, 4), digits = 4), collapse = " ")
}

rows <- list()
for (name in names(models)) {
  m <- models[[name]]
  nd <- if (grepl("randomForest|ranger", name)) stats::na.omit(newdata) else newdata
  t_local <- system.time(local <- if (is.null(m$type)) predict(m$fit, nd) else
    predict(m$fit, nd, type = m$type))[["elapsed"]]
  t_first <- system.time(remote <- remote_score(m$fit, nd, type = m$type, conn = conn))[["elapsed"]]
  t_again <- system.time(remote2 <- remote_score(m$fit, nd, type = m$type, conn = conn))[["elapsed"]]
  same <- identical(remote, local) && identical(remote2, local)
  cat(sprintf("%-24s identical: %-5s  local: %s\n%-24s                  remote: %s\n",
              name, same, preview(local), "", preview(remote)))
  rows[[name]] <- data.frame(model = name, rows = nrow(nd), identical = same,
                             local_s = t_local, remote_first_s = t_first,
                             remote_cached_s = t_again)
}
cat("\nTimings (seconds; the first remote call ships the model, the second reuses it):\n")
print(do.call(rbind, unname(rows)), row.names = FALSE)
dbx_disconnect(conn)
