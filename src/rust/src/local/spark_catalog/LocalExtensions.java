package dbrxr;

import java.io.File;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.FunctionIdentifier;
import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.parser.ParseException;
import org.apache.spark.sql.catalyst.parser.ParserInterface;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructType;

import scala.Function1;
import scala.Function2;
import scala.runtime.AbstractFunction1;
import scala.runtime.AbstractFunction2;
import scala.runtime.BoxedUnit;

/**
 * spark.sql.extensions of dbrxr's local cluster: a parser in front of
 * Spark's own that knows the Unity Catalog statements Spark lacks.
 *
 *  - `CREATE CATALOG [IF NOT EXISTS] c` makes catalog c (a LocalCatalog), and
 *    `USE CATALOG c` makes it the current one;
 *  - catalogs another context created are registered before a statement or
 *    a name is parsed, so c.s.t works in every context;
 *  - `MERGE INTO` and `UPDATE` are refused with an error that says why
 *    (they need Delta Lake), not Spark's "not supported temporarily".
 *
 * Everything else goes to Spark's parser unchanged: no SQL text is rewritten.
 */
public class LocalExtensions extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {
  @Override
  public BoxedUnit apply(SparkSessionExtensions ext) {
    Function2<SparkSession, ParserInterface, ParserInterface> make =
        new AbstractFunction2<SparkSession, ParserInterface, ParserInterface>() {
          @Override
          public ParserInterface apply(SparkSession session, ParserInterface parser) {
            return new Parser(session, parser);
          }
        };
    ext.injectParser(make);
    return BoxedUnit.UNIT;
  }

  static final Pattern CREATE_CATALOG =
      Pattern.compile("^\\s*CREATE\\s+CATALOG\\s+(IF\\s+NOT\\s+EXISTS\\s+)?`?([A-Za-z_][A-Za-z0-9_]*)`?\\s*;?\\s*$",
          Pattern.CASE_INSENSITIVE);
  static final Pattern USE_CATALOG =
      Pattern.compile("^\\s*(?:USE|SET)\\s+CATALOG\\s+`?([A-Za-z_][A-Za-z0-9_]*)`?\\s*;?\\s*$", Pattern.CASE_INSENSITIVE);
  static final Pattern SHOW_CATALOGS = Pattern.compile("^\\s*SHOW\\s+CATALOGS\\b", Pattern.CASE_INSENSITIVE);
  static final Pattern NEEDS_DELTA =
      Pattern.compile("^\\s*(MERGE\\s+INTO|UPDATE)\\s+([^\\s(]+)", Pattern.CASE_INSENSITIVE);

  static class Parser implements ParserInterface {
    private final SparkSession session;
    private final ParserInterface inner;

    Parser(SparkSession session, ParserInterface inner) {
      this.session = session;
      this.inner = inner;
    }

    private File warehouse() {
      return new File(session.conf().get("spark.sql.catalog.hive_metastore.warehouse"));
    }

    /** Register the catalogs made so far (CREATE CATALOG in any context). */
    private void registerCatalogs() {
      File[] made = new File(warehouse(), "_catalogs").listFiles();
      if (made == null) {
        return;
      }
      for (File f : made) {
        register(f.getName());
      }
    }

    private void register(String name) {
      String key = "spark.sql.catalog." + name;
      if (!session.conf().contains(key)) {
        session.conf().set(key + ".warehouse", warehouse().getPath());
        session.conf().set(key, LocalCatalog.class.getName());
      }
    }

    /** Load every catalog, so SHOW CATALOGS lists them (Spark lists the loaded ones). */
    private void loadCatalogs() {
      java.util.List<String> names = new java.util.ArrayList<>(java.util.Arrays.asList("hive_metastore", "main"));
      File[] made = new File(warehouse(), "_catalogs").listFiles();
      if (made != null) {
        for (File f : made) {
          names.add(f.getName());
        }
      }
      for (String n : names) {
        session.sessionState().catalogManager().catalog(n);
      }
    }

    @Override
    public LogicalPlan parsePlan(String sql) throws ParseException {
      registerCatalogs();
      if (SHOW_CATALOGS.matcher(sql).find()) {
        loadCatalogs();
      }
      Matcher m = CREATE_CATALOG.matcher(sql);
      if (m.matches()) {
        String name = m.group(2).toLowerCase(Locale.ROOT);
        File marker = new File(new File(warehouse(), "_catalogs"), name);
        boolean known = marker.isDirectory() || name.equals("main") || name.equals("hive_metastore");
        if (known && m.group(1) == null) {
          throw new IllegalArgumentException("[CATALOG_ALREADY_EXISTS] Catalog '" + name + "' already exists.");
        }
        if (!known && !marker.mkdirs()) {
          throw new IllegalStateException("could not create catalog " + name + " (" + marker + ")");
        }
        register(name);
        return inner.parsePlan("SELECT 1 AS created WHERE false");
      }
      m = USE_CATALOG.matcher(sql);
      if (m.matches()) {
        return inner.parsePlan("USE `" + m.group(1) + "`");
      }
      m = NEEDS_DELTA.matcher(sql);
      if (m.find()) {
        throw new UnsupportedOperationException(
            LocalCatalog.noDelta(m.group(1).toUpperCase(Locale.ROOT).replaceAll("\\s+", " "), m.group(2)));
      }
      return inner.parsePlan(sql);
    }

    @Override
    public scala.collection.Seq<String> parseMultipartIdentifier(String sql) throws ParseException {
      registerCatalogs();
      return inner.parseMultipartIdentifier(sql);
    }

    @Override
    public Expression parseExpression(String sql) throws ParseException {
      return inner.parseExpression(sql);
    }

    @Override
    public TableIdentifier parseTableIdentifier(String sql) throws ParseException {
      return inner.parseTableIdentifier(sql);
    }

    @Override
    public FunctionIdentifier parseFunctionIdentifier(String sql) throws ParseException {
      return inner.parseFunctionIdentifier(sql);
    }

    @Override
    public LogicalPlan parseQuery(String sql) throws ParseException {
      return inner.parseQuery(sql);
    }

    @Override
    public StructType parseTableSchema(String sql) throws ParseException {
      return inner.parseTableSchema(sql);
    }

    @Override
    public DataType parseDataType(String sql) throws ParseException {
      return inner.parseDataType(sql);
    }
  }
}
