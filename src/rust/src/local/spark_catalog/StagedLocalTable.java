package dbrxr;

import java.io.File;
import java.util.EnumSet;
import java.util.Set;

import org.apache.spark.sql.catalyst.analysis.TableAlreadyExistsException;
import org.apache.spark.sql.connector.catalog.StagedTable;
import org.apache.spark.sql.connector.catalog.SupportsWrite;
import org.apache.spark.sql.connector.catalog.TableCapability;
import org.apache.spark.sql.connector.write.LogicalWriteInfo;
import org.apache.spark.sql.connector.write.WriteBuilder;
import org.apache.spark.sql.types.StructType;

/**
 * A table being created or replaced (CREATE [OR REPLACE] TABLE [AS SELECT],
 * saveAsTable): written whole into a hidden directory, then swapped in at
 * commit, so readers see the old table or the new one, never a part.
 */
class StagedLocalTable implements StagedTable, SupportsWrite {
  enum Mode { CREATE, REPLACE, CREATE_OR_REPLACE }

  private final String name;
  private final File staging;
  private final File target;
  private final StructType schema;
  private final Mode mode;

  StagedLocalTable(String name, File parent, File target, StructType schema, Mode mode) {
    this.name = name;
    this.target = target;
    this.schema = schema;
    this.mode = mode;
    this.staging = new File(parent, LocalCatalog.hiddenName(target.getName(), "tmp"));
    if (!staging.mkdirs()) {
      throw new IllegalStateException("could not create " + staging);
    }
    LocalCatalog.writeSchema(staging, schema);
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public StructType schema() {
    return schema;
  }

  @Override
  public Set<TableCapability> capabilities() {
    return EnumSet.of(TableCapability.BATCH_WRITE);
  }

  @Override
  public WriteBuilder newWriteBuilder(LogicalWriteInfo info) {
    return LocalTable.parquet(name, staging, schema).newWriteBuilder(info);
  }

  @Override
  public void commitStagedChanges() {
    try {
      Dirs.touchSuccess(staging);
      if (mode == Mode.CREATE && LocalCatalog.isTable(target)) {
        throw new IllegalStateException(new TableAlreadyExistsException(name));
      }
      Dirs.swapIn(staging, target);
    } finally {
      if (staging.exists()) {
        Dirs.delete(staging);
      }
    }
  }

  @Override
  public void abortStagedChanges() {
    Dirs.delete(staging);
  }
}
