package camstream.realtime;

import java.util.ArrayList;
import java.util.List;
import org.opencv.core.Mat;

/**
 * The native images of the record being processed, released when it is done.
 *
 * <p>A Java Mat frees its pixels only when the garbage collector finalizes it, and a small Java
 * object rarely prompts a collection: unreleased, a long-running task's native memory grew by
 * a frame's worth per record until the next GC (the Spark JVM passed 2 GB in the overload test).
 */
final class Mats {
  private static final ThreadLocal<List<Mat>> OWNED = ThreadLocal.withInitial(ArrayList::new);

  private Mats() {}

  /** `mat`, to be released at the end of the current record. */
  static <T extends Mat> T own(T mat) {
    if (mat != null) {
      OWNED.get().add(mat);
    }
    return mat;
  }

  /** Release every Mat the current record made (never throws). */
  static void releaseAll() {
    List<Mat> owned = OWNED.get();
    for (Mat mat : owned) {
      try {
        mat.release();
      } catch (RuntimeException ignored) {
        // a Mat that cannot be released is left to the collector
      }
    }
    owned.clear();
  }
}
