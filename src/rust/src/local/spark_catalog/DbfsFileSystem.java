package dbrxr;

import java.io.File;
import java.io.IOException;
import java.net.URI;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;

/**
 * `dbfs:/` paths in the local cluster's Spark (spark.hadoop.fs.dbfs.impl):
 * dbfs:/x/y is the file the DBFS API calls /x/y, under the cluster's DBFS
 * root (spark.hadoop.fs.dbfs.root), so spark.read.csv("dbfs:/FileStore/a.csv")
 * reads what the DBFS API and /dbfs/FileStore/a.csv hold, as on Databricks.
 */
public class DbfsFileSystem extends RawLocalFileSystem {
  private static final URI URI_ROOT = URI.create("dbfs:///");
  private File root;

  @Override
  public void initialize(URI uri, Configuration conf) throws IOException {
    super.initialize(uri, conf);
    String r = conf.get("fs.dbfs.root");
    if (r == null) {
      throw new IOException("fs.dbfs.root is not set: the local cluster's DBFS root is unknown");
    }
    root = new File(r);
  }

  @Override
  public URI getUri() {
    return URI_ROOT;
  }

  @Override
  public String getScheme() {
    return "dbfs";
  }

  @Override
  protected Path getInitialWorkingDirectory() {
    return new Path("dbfs:/");
  }

  @Override
  public Path getWorkingDirectory() {
    return new Path("dbfs:/");
  }

  @Override
  public File pathToFile(Path path) {
    String p = path.toUri().getPath();
    return new File(root, p.isEmpty() ? "/" : p);
  }

  // Statuses name the dbfs:/ path asked for, not the local file behind it.
  private static FileStatus named(FileStatus st, Path path) {
    st.setPath(path);
    return st;
  }

  private Path qualify(Path p) {
    return new Path("dbfs", null, p.toUri().getPath());
  }

  @Override
  public FileStatus getFileStatus(Path f) throws IOException {
    return named(super.getFileStatus(f), qualify(f));
  }

  @Override
  public FileStatus getFileLinkStatus(Path f) throws IOException {
    return named(super.getFileLinkStatus(f), qualify(f));
  }

  @Override
  public FileStatus[] listStatus(Path f) throws IOException {
    FileStatus[] all = super.listStatus(f);
    if (all == null) {
      return null;
    }
    Path dir = qualify(f);
    boolean isFile = all.length == 1 && !pathToFile(f).isDirectory();
    for (FileStatus st : all) {
      st.setPath(isFile ? dir : new Path(dir, st.getPath().getName()));
    }
    return all;
  }
}
