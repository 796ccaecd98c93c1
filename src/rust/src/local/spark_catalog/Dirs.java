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

  /**
   * Move the data files of a committed `staging` write into `target`, then
   * mark the change: all of them or, if one move fails, none (those moved go
   * back). Each file name is unique to its write, so concurrent appends never
   * touch each other's files.
   */
  static void moveFilesIn(File staging, File target) {
    if (!target.isDirectory()) {
      throw new IllegalStateException("the table's directory " + target
          + " was removed while rows were being appended; nothing was written");
    }
    java.util.List<File> moved = new java.util.ArrayList<>();
    File[] files = staging.listFiles();
    try {
      if (files != null) {
        for (File f : files) {
          String n = f.getName();
          if (f.isFile() && !n.startsWith("_") && !n.startsWith(".")) {
            File to = new File(target, n);
            move(f, to);
            moved.add(to);
          }
        }
      }
    } catch (RuntimeException e) {
      for (File to : moved) {
        try {
          move(to, new File(staging, to.getName()));
        } catch (RuntimeException ignored) {
          // the original error says what failed
        }
      }
      throw e;
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
