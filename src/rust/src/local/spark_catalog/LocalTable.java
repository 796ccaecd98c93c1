package dbrxr;

import java.io.File;
import java.util.Collections;
import java.util.EnumSet;
import java.util.Set;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.connector.catalog.SupportsDelete;
import org.apache.spark.sql.connector.catalog.SupportsRead;
import org.apache.spark.sql.connector.catalog.SupportsWrite;
import org.apache.spark.sql.connector.catalog.TableCapability;
import org.apache.spark.sql.connector.read.ScanBuilder;
import org.apache.spark.sql.connector.write.LogicalWriteInfo;
import org.apache.spark.sql.connector.write.WriteBuilder;
import org.apache.spark.sql.execution.datasources.parquet.ParquetFileFormat;
import org.apache.spark.sql.execution.datasources.v2.parquet.ParquetTable;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.sources.Filter;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/** A table of the local catalog: a directory of Parquet files (Spark's own Parquet reader and writer). */
class LocalTable implements SupportsRead, SupportsWrite, SupportsDelete {
  private final String name;
  final File dir;
  private final StructType declared;  // from _dbrxr_schema.json, or null: the files' own

  LocalTable(String name, File dir, StructType declared) {
    this.name = name;
    this.dir = dir;
    this.declared = declared;
  }

  static ParquetTable parquet(String name, File dir, StructType schema) {
    scala.collection.Seq<String> paths =
        scala.collection.JavaConverters.asScalaBuffer(Collections.singletonList(dir.getPath())).toSeq();
    scala.Option<StructType> given = schema == null ? scala.Option.empty() : scala.Option.apply(schema);
    return new ParquetTable(name, SparkSession.active(), CaseInsensitiveStringMap.empty(), paths, given,
        ParquetFileFormat.class);
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public StructType schema() {
    return declared != null ? declared : parquet(name, dir, null).schema();
  }

  @Override
  public Set<TableCapability> capabilities() {
    return EnumSet.of(TableCapability.BATCH_READ, TableCapability.BATCH_WRITE, TableCapability.TRUNCATE);
  }

  @Override
  public ScanBuilder newScanBuilder(CaseInsensitiveStringMap options) {
    return parquet(name, dir, schema()).newScanBuilder(options);
  }

  @Override
  public WriteBuilder newWriteBuilder(LogicalWriteInfo info) {
    return new StagingWriteBuilder(name, dir, schema(), info);
  }

  // ---- DELETE FROM ... WHERE: the rows that stay, written aside and swapped in ----

  @Override
  public boolean canDeleteWhere(Filter[] filters) {
    for (Filter f : filters) {
      if (Filters.toColumn(f) == null) {
        return false;
      }
    }
    return true;
  }

  @Override
  public void deleteWhere(Filter[] filters) {
    StructType schema = schema();
    Column cond = functions.lit(true);
    for (Filter f : filters) {
      cond = cond.and(Filters.toColumn(f));
    }
    Dataset<Row> keep = SparkSession.active().read().schema(schema).parquet(dir.getPath())
        .where(functions.not(functions.coalesce(cond, functions.lit(false))));
    File staging = new File(dir.getParentFile(), LocalCatalog.hiddenName(dir.getName(), "tmp"));
    try {
      keep.write().parquet(staging.getPath());
      LocalCatalog.writeSchema(staging, schema);
      Dirs.swapIn(staging, dir);
    } finally {
      if (staging.exists()) {
        Dirs.delete(staging);
      }
    }
  }
}
