package dbrxr;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import org.apache.spark.sql.catalyst.analysis.NamespaceAlreadyExistsException;
import org.apache.spark.sql.catalyst.analysis.NoSuchNamespaceException;
import org.apache.spark.sql.catalyst.analysis.NoSuchTableException;
import org.apache.spark.sql.catalyst.analysis.NonEmptyNamespaceException;
import org.apache.spark.sql.catalyst.analysis.TableAlreadyExistsException;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.connector.catalog.NamespaceChange;
import org.apache.spark.sql.connector.catalog.StagedTable;
import org.apache.spark.sql.connector.catalog.StagingTableCatalog;
import org.apache.spark.sql.connector.catalog.SupportsNamespaces;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableChange;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/**
 * One Unity Catalog catalog of dbrxr's local cluster, as a Spark catalog
 * (spark.sql.catalog.NAME = dbrxr.LocalCatalog), so catalog.schema.table
 * works wherever Spark takes a name, in SQL and in the DataFrame API.
 *
 * It keeps nothing in memory: schema s of catalog c is the directory
 * WAREHOUSE/c__s.db (hive_metastore's schemas are WAREHOUSE/s.db, and its
 * `default` schema is WAREHOUSE itself, as Spark's own catalog lays them
 * out), and a table is a directory of Parquet files in it. So every context
 * sees what any other context wrote the moment it was committed.
 *
 * Writes are whole or nothing: a new or replaced table is written to a hidden
 * directory and swapped in at commit (CREATE OR REPLACE TABLE ... AS SELECT
 * is atomic, as on Delta), and an append writes to a hidden directory of its
 * own and moves its files in at commit, so concurrent appends never share
 * Spark's _temporary directory.
 */
public class LocalCatalog implements StagingTableCatalog, SupportsNamespaces {
  static final String SCHEMA_FILE = "_dbrxr_schema.json";
  private String name;
  private File warehouse;
  private boolean hive;

  @Override
  public void initialize(String name, CaseInsensitiveStringMap options) {
    this.name = name;
    String root = options.get("warehouse");
    if (root == null) {
      throw new IllegalArgumentException("spark.sql.catalog." + name + ".warehouse is not set");
    }
    this.warehouse = new File(root);
    this.hive = name.equalsIgnoreCase("hive_metastore") || name.equalsIgnoreCase("spark_catalog");
  }

  @Override
  public String name() {
    return name;
  }

  // As on Databricks, a catalog's current schema starts as `default`.
  @Override
  public String[] defaultNamespace() {
    return new String[] {"default"};
  }

  // ---- names and directories ---------------------------------------------------

  private static String only(String[] namespace) throws NoSuchNamespaceException {
    if (namespace.length != 1) {
      throw new NoSuchNamespaceException(namespace);
    }
    return namespace[0].toLowerCase();
  }

  File schemaDir(String schema) {
    if (hive) {
      return schema.equals("default") ? warehouse : new File(warehouse, schema + ".db");
    }
    return new File(warehouse, name.toLowerCase() + "__" + schema + ".db");
  }

  File tableDir(Identifier ident) throws NoSuchNamespaceException {
    return new File(schemaDir(only(ident.namespace())), ident.name().toLowerCase());
  }

  String display(Identifier ident) {
    return name + "." + String.join(".", ident.namespace()) + "." + ident.name();
  }

  static boolean isTable(File dir) {
    return dir.isDirectory() && !dir.getName().startsWith("_") && !dir.getName().startsWith(".")
        && !dir.getName().endsWith(".db")
        && (new File(dir, "_SUCCESS").exists() || new File(dir, SCHEMA_FILE).exists());
  }

  // ---- namespaces -------------------------------------------------------------

  @Override
  public String[][] listNamespaces() {
    List<String[]> out = new ArrayList<>();
    if (hive) {
      out.add(new String[] {"default"});
    }
    String prefix = name.toLowerCase() + "__";
    File[] entries = warehouse.listFiles();
    if (entries != null) {
      Arrays.sort(entries);
      for (File f : entries) {
        String n = f.getName();
        if (!f.isDirectory() || !n.endsWith(".db") || n.startsWith("_") || n.startsWith(".")) {
          continue;
        }
        String base = n.substring(0, n.length() - 3);
        if (hive && !base.contains("__")) {
          out.add(new String[] {base});
        } else if (!hive && base.startsWith(prefix)) {
          out.add(new String[] {base.substring(prefix.length())});
        }
      }
    }
    return out.toArray(new String[0][]);
  }

  @Override
  public String[][] listNamespaces(String[] namespace) throws NoSuchNamespaceException {
    if (namespace.length == 0) {
      return listNamespaces();
    }
    if (!namespaceExists(namespace)) {
      throw new NoSuchNamespaceException(namespace);
    }
    return new String[0][];
  }

  @Override
  public boolean namespaceExists(String[] namespace) {
    return namespace.length == 1 && schemaDir(namespace[0].toLowerCase()).isDirectory();
  }

  @Override
  public Map<String, String> loadNamespaceMetadata(String[] namespace) throws NoSuchNamespaceException {
    if (!namespaceExists(namespace)) {
      throw new NoSuchNamespaceException(namespace);
    }
    Map<String, String> meta = new HashMap<>();
    meta.put(SupportsNamespaces.PROP_LOCATION, schemaDir(namespace[0].toLowerCase()).toURI().toString());
    return meta;
  }

  @Override
  public void createNamespace(String[] namespace, Map<String, String> metadata)
      throws NamespaceAlreadyExistsException {
    if (namespaceExists(namespace)) {
      throw new NamespaceAlreadyExistsException(namespace);
    }
    String schema;
    try {
      schema = only(namespace);
    } catch (NoSuchNamespaceException e) {
      throw new IllegalArgumentException("A schema name has one part: " + String.join(".", namespace));
    }
    if (!schemaDir(schema).mkdirs() && !schemaDir(schema).isDirectory()) {
      throw new IllegalStateException("could not create " + schemaDir(schema));
    }
  }

  @Override
  public void alterNamespace(String[] namespace, NamespaceChange... changes) throws NoSuchNamespaceException {
    if (!namespaceExists(namespace)) {
      throw new NoSuchNamespaceException(namespace);
    }
    // Properties and comments are not kept: nothing else to do.
  }

  @Override
  public boolean dropNamespace(String[] namespace, boolean cascade)
      throws NoSuchNamespaceException, NonEmptyNamespaceException {
    if (!namespaceExists(namespace)) {
      return false;
    }
    File dir = schemaDir(namespace[0].toLowerCase());
    if (!cascade && listTables(namespace).length > 0) {
      throw new NonEmptyNamespaceException(namespace);
    }
    if (hive && namespace[0].equalsIgnoreCase("default")) {
      throw new IllegalArgumentException("The default schema cannot be dropped.");
    }
    Dirs.removeAside(dir);
    return true;
  }

  // ---- tables -----------------------------------------------------------------

  @Override
  public Identifier[] listTables(String[] namespace) throws NoSuchNamespaceException {
    if (!namespaceExists(namespace)) {
      throw new NoSuchNamespaceException(namespace);
    }
    List<Identifier> out = new ArrayList<>();
    File[] entries = schemaDir(namespace[0].toLowerCase()).listFiles();
    if (entries != null) {
      Arrays.sort(entries);
      for (File f : entries) {
        if (isTable(f)) {
          out.add(Identifier.of(namespace, f.getName()));
        }
      }
    }
    return out.toArray(new Identifier[0]);
  }

  @Override
  public Table loadTable(Identifier ident) throws NoSuchTableException {
    File dir;
    try {
      dir = tableDir(ident);
    } catch (NoSuchNamespaceException e) {
      throw new NoSuchTableException(ident);
    }
    if (!isTable(dir)) {
      throw new NoSuchTableException(ident);
    }
    return new LocalTable(display(ident), dir, readSchema(dir));
  }

  @Override
  public Table loadTable(Identifier ident, String version) throws NoSuchTableException {
    throw new UnsupportedOperationException(noDelta("Time travel (VERSION AS OF)", display(ident)));
  }

  @Override
  public Table loadTable(Identifier ident, long timestamp) throws NoSuchTableException {
    throw new UnsupportedOperationException(noDelta("Time travel (TIMESTAMP AS OF)", display(ident)));
  }

  static String noDelta(String what, String table) {
    return "[DBRXR_LOCAL_NO_DELTA] " + what + " on " + table + " needs Delta Lake, which dbrxr's local "
        + "cluster does not have (its tables are Parquet). Run it on a Databricks cluster, or rewrite "
        + "it as CREATE OR REPLACE TABLE ... AS SELECT or DELETE FROM ... WHERE.";
  }

  static StructType readSchema(File dir) {
    File f = new File(dir, SCHEMA_FILE);
    if (!f.exists()) {
      return null;
    }
    try {
      return (StructType) StructType.fromJson(new String(Files.readAllBytes(f.toPath()), StandardCharsets.UTF_8));
    } catch (IOException e) {
      return null;
    }
  }

  static void writeSchema(File dir, StructType schema) {
    try {
      Files.write(new File(dir, SCHEMA_FILE).toPath(), schema.json().getBytes(StandardCharsets.UTF_8));
    } catch (IOException e) {
      throw new IllegalStateException("could not write the schema of " + dir + ": " + e.getMessage(), e);
    }
  }

  private File existingSchemaDir(Identifier ident) throws NoSuchNamespaceException {
    if (!namespaceExists(ident.namespace())) {
      throw new NoSuchNamespaceException(ident.namespace());
    }
    return schemaDir(only(ident.namespace()));
  }

  @Override
  public Table createTable(Identifier ident, StructType schema, Transform[] partitions, Map<String, String> props)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    StagedTable staged = stageCreate(ident, schema, partitions, props);
    staged.commitStagedChanges();
    return loadTableOrFail(ident);
  }

  private Table loadTableOrFail(Identifier ident) {
    try {
      return loadTable(ident);
    } catch (NoSuchTableException e) {
      throw new IllegalStateException(display(ident) + " vanished right after it was created", e);
    }
  }

  @Override
  public StagedTable stageCreate(Identifier ident, StructType schema, Transform[] partitions, Map<String, String> props)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    File parent = existingSchemaDir(ident);
    if (isTable(tableDir(ident))) {
      throw new TableAlreadyExistsException(display(ident));
    }
    checkPartitions(partitions, ident);
    return new StagedLocalTable(display(ident), parent, tableDir(ident), schema, StagedLocalTable.Mode.CREATE);
  }

  @Override
  public StagedTable stageReplace(Identifier ident, StructType schema, Transform[] partitions, Map<String, String> props)
      throws NoSuchNamespaceException, NoSuchTableException {
    File parent = existingSchemaDir(ident);
    if (!isTable(tableDir(ident))) {
      throw new NoSuchTableException(ident);
    }
    checkPartitions(partitions, ident);
    return new StagedLocalTable(display(ident), parent, tableDir(ident), schema, StagedLocalTable.Mode.REPLACE);
  }

  @Override
  public StagedTable stageCreateOrReplace(Identifier ident, StructType schema, Transform[] partitions,
                                          Map<String, String> props) throws NoSuchNamespaceException {
    File parent = existingSchemaDir(ident);
    checkPartitions(partitions, ident);
    return new StagedLocalTable(display(ident), parent, tableDir(ident), schema, StagedLocalTable.Mode.CREATE_OR_REPLACE);
  }

  private void checkPartitions(Transform[] partitions, Identifier ident) {
    if (partitions != null && partitions.length > 0) {
      throw new UnsupportedOperationException("[DBRXR_LOCAL_NO_PARTITIONS] " + display(ident)
          + ": dbrxr's local cluster does not partition tables (PARTITIONED BY / CLUSTER BY); "
          + "leave the clause out to test locally.");
    }
  }

  @Override
  public Table alterTable(Identifier ident, TableChange... changes) throws NoSuchTableException {
    throw new UnsupportedOperationException("[DBRXR_LOCAL_NO_ALTER] ALTER TABLE " + display(ident)
        + " is not supported by dbrxr's local cluster; write the table again with "
        + "CREATE OR REPLACE TABLE ... AS SELECT.");
  }

  @Override
  public boolean dropTable(Identifier ident) {
    File dir;
    try {
      dir = tableDir(ident);
    } catch (NoSuchNamespaceException e) {
      return false;
    }
    if (!isTable(dir)) {
      return false;
    }
    Dirs.removeAside(dir);
    return true;
  }

  @Override
  public void renameTable(Identifier from, Identifier to) throws NoSuchTableException, TableAlreadyExistsException {
    try {
      File src = tableDir(from);
      File dst = tableDir(to);
      if (!isTable(src)) {
        throw new NoSuchTableException(from);
      }
      if (dst.exists()) {
        throw new TableAlreadyExistsException(display(to));
      }
      existingSchemaDir(to);
      Files.move(src.toPath(), dst.toPath(), java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    } catch (NoSuchNamespaceException e) {
      throw new NoSuchTableException(to);
    } catch (IOException e) {
      throw new IllegalStateException("could not rename " + display(from) + ": " + e.getMessage(), e);
    }
  }

  static String hiddenName(String base, String what) {
    return "_dbrxr_" + what + "_" + base + "_" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
  }
}
