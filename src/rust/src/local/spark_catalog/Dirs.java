package dbrxr;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;

/** Directory moves of the local catalog: renames within one schema directory. */
final class Dirs {
  private Dirs() {}

  /** Rename `dir` to a hidden name beside it (readers stop seeing it at once), then delete it. */
  static void removeAside(File dir) {
    File aside = new File(dir.getParentFile(), LocalCatalog.hiddenName(dir.getName(), "old"));
    if (dir.equals(aside) || !dir.renameTo(aside)) {
      aside = dir;
    }
    delete(aside);
  }

  static void delete(File f) {
    File[] children = f.listFiles();
    if (children != null) {
      for (File c : children) {
        delete(c);
      }
    }
    f.delete();
  }

  /** Put the complete directory `staging` where `target` is: the old one (if any) goes aside first. */
  static void swapIn(File staging, File target) {
    File old = null;
    if (target.exists()) {
      old = new File(target.getParentFile(), LocalCatalog.hiddenName(target.getName(), "old"));
      move(target, old);
    }
    try {
      move(staging, target);
    } catch (RuntimeException e) {
      if (old != null) {
        move(old, target);  // put the previous table back
      }
      throw e;
    }
    if (old != null) {
      delete(old);
    }
  }

  static void move(File from, File to) {
    try {
      Files.move(from.toPath(), to.toPath(), StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException e) {
      throw new IllegalStateException("could not move " + from + " to " + to + ": " + e, e);
    }
  }

  /** Move the data files of a committed `staging` write into `target`, then mark the change. */
  static void moveFilesIn(File staging, File target) {
    File[] files = staging.listFiles();
    if (files != null) {
      for (File f : files) {
        String n = f.getName();
        if (f.isFile() && !n.startsWith("_") && !n.startsWith(".")) {
          move(f, new File(target, n));
        }
      }
    }
    touchSuccess(target);
    delete(staging);
  }

  static void touchSuccess(File dir) {
    File success = new File(dir, "_SUCCESS");
    try {
      if (!success.createNewFile()) {
        success.setLastModified(System.currentTimeMillis());
      }
      // A new mtime on the directory tells other contexts' Spark caches the files changed.
      dir.setLastModified(System.currentTimeMillis());
    } catch (IOException e) {
      throw new IllegalStateException("could not mark " + dir + ": " + e, e);
    }
  }
}
