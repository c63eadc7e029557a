package camstream.realtime;

import java.util.Iterator;
import java.util.LinkedHashMap;

/**
 * The `live` policy's starvation guard, as camstream.core.freshness.FreshnessGuard: per camera,
 * the capture time of its newest analysed frame; thread-safe. A frame too old to analyse is
 * analysed anyway when its camera had nothing analysed for the interval before it (in the
 * camera's own capture clock) or is not known here yet.
 *
 * <p>One guard per JVM (an executor keeps it between batches and shares it between its tasks),
 * replaced by a new one when the interval changes, as Python's worker_guard.
 */
final class FreshnessGuard {
  /** Cameras remembered at most; the least recently analysed are forgotten first. */
  static final int MAX_CAMERAS = 20_000;

  private static FreshnessGuard current;

  /** This JVM's guard for that interval (a new interval: a new guard). */
  static synchronized FreshnessGuard forInterval(long minIntervalMs) {
    if (current == null || current.minIntervalMs != minIntervalMs) {
      current = new FreshnessGuard(minIntervalMs, MAX_CAMERAS);
    }
    return current;
  }

  private final long minIntervalMs;
  // The interval in ns, when a long holds it; else beyond says which way it overflows (1: no
  // difference of two capture times reaches it, -1: every one does).
  private final long minIntervalNs;
  private final int beyond;
  private final int maxCameras;
  // In order of the last analysis, the least recent first.
  private final LinkedHashMap<String, Long> analysed = new LinkedHashMap<>();

  FreshnessGuard(long minIntervalMs, int maxCameras) {
    this.minIntervalMs = minIntervalMs;
    long ns = 0;
    int overflow = 0;
    try {
      ns = Math.multiplyExact(minIntervalMs, 1_000_000L);
    } catch (ArithmeticException e) {
      overflow = minIntervalMs > 0 ? 1 : -1;
    }
    this.minIntervalNs = ns;
    this.beyond = overflow;
    this.maxCameras = maxCameras;
  }

  /** True if this frame's camera had nothing analysed for the interval before it. */
  synchronized boolean starving(String cameraId, long captureTsNs) {
    Long last = analysed.get(cameraId);
    if (last == null) {
      return true;
    }
    if (beyond != 0) {
      return beyond < 0;
    }
    // Exact, as Python's ints: both times are >= 0, so the difference fits a long.
    return captureTsNs - last >= minIntervalNs;
  }

  /**
   * Whether to analyse this frame: fresh ones, and those of a starving camera. Answered and
   * recorded at once, so that frames of one camera that threads take at the same moment cannot
   * both claim the camera's starvation.
   */
  synchronized boolean claim(String cameraId, long captureTsNs, boolean fresh) {
    if (!fresh && !starving(cameraId, captureTsNs)) {
      return false;
    }
    Long last = analysed.remove(cameraId);
    analysed.put(cameraId, last == null ? captureTsNs : Math.max(last, captureTsNs));
    Iterator<Long> oldest = analysed.values().iterator();
    while (analysed.size() > maxCameras && oldest.hasNext()) {
      oldest.next();
      oldest.remove();
    }
    return true;
  }

  synchronized int cameras() {
    return analysed.size();
  }
}
