package dbrxr;

import java.io.File;

import org.apache.spark.sql.connector.write.BatchWrite;
import org.apache.spark.sql.connector.write.DataWriterFactory;
import org.apache.spark.sql.connector.write.LogicalWriteInfo;
import org.apache.spark.sql.connector.write.PhysicalWriteInfo;
import org.apache.spark.sql.connector.write.SupportsTruncate;
import org.apache.spark.sql.connector.write.Write;
import org.apache.spark.sql.connector.write.WriteBuilder;
import org.apache.spark.sql.connector.write.WriterCommitMessage;
import org.apache.spark.sql.types.StructType;

/**
 * A write into an existing table (INSERT INTO, append, INSERT OVERWRITE):
 * Spark's Parquet writer fills a hidden directory of this write's own, and
 * only a successful commit moves it in (an append's files, or the whole
 * directory for an overwrite). Two writers never share a directory, and a
 * failed or cancelled write leaves the table as it was.
 */
class StagingWriteBuilder implements SupportsTruncate {
  private final String name;
  private final File dir;
  private final StructType schema;
  private final LogicalWriteInfo info;
  private boolean truncate;

  StagingWriteBuilder(String name, File dir, StructType schema, LogicalWriteInfo info) {
    this.name = name;
    this.dir = dir;
    this.schema = schema;
    this.info = info;
  }

  @Override
  public WriteBuilder truncate() {
    truncate = true;
    return this;
  }

  @Override
  public Write build() {
    final File staging = new File(dir.getParentFile(), LocalCatalog.hiddenName(dir.getName(), "tmp"));
    final Write inner = LocalTable.parquet(name, staging, schema).newWriteBuilder(info).build();
    final boolean replace = truncate;
    return new Write() {
      @Override
      public String description() {
        return inner.description();
      }

      @Override
      public BatchWrite toBatch() {
        return new Committing(inner.toBatch(), staging, dir, schema, replace);
      }
    };
  }

  /** Spark's batch write, with the move into the table after its own commit. */
  static class Committing implements BatchWrite {
    private final BatchWrite inner;
    private final File staging;
    private final File target;
    private final StructType schema;
    private final boolean replace;

    Committing(BatchWrite inner, File staging, File target, StructType schema, boolean replace) {
      this.inner = inner;
      this.staging = staging;
      this.target = target;
      this.schema = schema;
      this.replace = replace;
    }

    @Override
    public DataWriterFactory createBatchWriterFactory(PhysicalWriteInfo info) {
      return inner.createBatchWriterFactory(info);
    }

    @Override
    public boolean useCommitCoordinator() {
      return inner.useCommitCoordinator();
    }

    @Override
    public void onDataWriterCommit(WriterCommitMessage message) {
      inner.onDataWriterCommit(message);
    }

    @Override
    public void commit(WriterCommitMessage[] messages) {
      try {
        inner.commit(messages);
        if (replace) {
          LocalCatalog.writeSchema(staging, schema);
          Dirs.touchSuccess(staging);
          Dirs.swapIn(staging, target);
        } else {
          Dirs.moveFilesIn(staging, target);
        }
      } finally {
        if (staging.exists()) {
          Dirs.delete(staging);
        }
      }
    }

    @Override
    public void abort(WriterCommitMessage[] messages) {
      try {
        inner.abort(messages);
      } finally {
        Dirs.delete(staging);
      }
    }
  }
}
