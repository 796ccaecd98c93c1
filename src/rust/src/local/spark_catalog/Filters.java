package dbrxr;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.sources.AlwaysFalse;
import org.apache.spark.sql.sources.AlwaysTrue;
import org.apache.spark.sql.sources.And;
import org.apache.spark.sql.sources.EqualNullSafe;
import org.apache.spark.sql.sources.EqualTo;
import org.apache.spark.sql.sources.Filter;
import org.apache.spark.sql.sources.GreaterThan;
import org.apache.spark.sql.sources.GreaterThanOrEqual;
import org.apache.spark.sql.sources.In;
import org.apache.spark.sql.sources.IsNotNull;
import org.apache.spark.sql.sources.IsNull;
import org.apache.spark.sql.sources.LessThan;
import org.apache.spark.sql.sources.LessThanOrEqual;
import org.apache.spark.sql.sources.Not;
import org.apache.spark.sql.sources.Or;
import org.apache.spark.sql.sources.StringContains;
import org.apache.spark.sql.sources.StringEndsWith;
import org.apache.spark.sql.sources.StringStartsWith;

/** A DELETE's conditions (Spark's pushed-down filters) back as columns; null when one has no column form. */
final class Filters {
  private Filters() {}

  static Column toColumn(Filter f) {
    if (f instanceof AlwaysTrue) return functions.lit(true);
    if (f instanceof AlwaysFalse) return functions.lit(false);
    if (f instanceof EqualTo) return col(((EqualTo) f).attribute()).equalTo(functions.lit(((EqualTo) f).value()));
    if (f instanceof EqualNullSafe)
      return col(((EqualNullSafe) f).attribute()).eqNullSafe(functions.lit(((EqualNullSafe) f).value()));
    if (f instanceof GreaterThan) return col(((GreaterThan) f).attribute()).gt(functions.lit(((GreaterThan) f).value()));
    if (f instanceof GreaterThanOrEqual)
      return col(((GreaterThanOrEqual) f).attribute()).geq(functions.lit(((GreaterThanOrEqual) f).value()));
    if (f instanceof LessThan) return col(((LessThan) f).attribute()).lt(functions.lit(((LessThan) f).value()));
    if (f instanceof LessThanOrEqual)
      return col(((LessThanOrEqual) f).attribute()).leq(functions.lit(((LessThanOrEqual) f).value()));
    if (f instanceof In) return col(((In) f).attribute()).isin(((In) f).values());
    if (f instanceof IsNull) return col(((IsNull) f).attribute()).isNull();
    if (f instanceof IsNotNull) return col(((IsNotNull) f).attribute()).isNotNull();
    if (f instanceof StringStartsWith)
      return col(((StringStartsWith) f).attribute()).startsWith(((StringStartsWith) f).value());
    if (f instanceof StringEndsWith) return col(((StringEndsWith) f).attribute()).endsWith(((StringEndsWith) f).value());
    if (f instanceof StringContains) return col(((StringContains) f).attribute()).contains(((StringContains) f).value());
    if (f instanceof And) return both(toColumn(((And) f).left()), toColumn(((And) f).right()), true);
    if (f instanceof Or) return both(toColumn(((Or) f).left()), toColumn(((Or) f).right()), false);
    if (f instanceof Not) {
      Column c = toColumn(((Not) f).child());
      return c == null ? null : functions.not(c);
    }
    return null;
  }

  private static Column both(Column a, Column b, boolean and) {
    if (a == null || b == null) return null;
    return and ? a.and(b) : a.or(b);
  }

  // A filter's attribute is a column name quoted as Spark parses one (`a.b` for a dotted name).
  private static Column col(String attribute) {
    return functions.col(attribute);
  }
}
