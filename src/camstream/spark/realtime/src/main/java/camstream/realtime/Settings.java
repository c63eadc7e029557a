package camstream.realtime;

import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * What the per-record function needs, as camstream's RecordSettings: passed by the job as one
 * literal "name=value;name=value" argument of the UDF, parsed once per distinct text.
 */
final class Settings {
  final String cascade;
  final double scaleFactor;
  final int minNeighbors;
  final int minSize;
  final int detectWidth; // 0: detect on the full frame
  final boolean equalizeHistogram;
  final double[] boxColourBgr; // e.g. {0, 255, 0}: the reference demo's green
  final int boxThickness; // 0: grows with the frame (as box_thickness None in Python)
  final int jpegQuality;
  final int minJpegQuality;
  final int minFrameWidth;
  final long maxFrameBytes; // -1: no limit
  final long maxAgeMs; // -1: every frame is analysed (the `all` freshness policy)
  final long minAnalysisIntervalMs; // -1: no starvation guard (FreshnessGuard)
  final long outputMaxBytes;
  final long deadLetterMaxBytes;
  final String outputTopic;
  final String deadLetterTopic;
  final int opencvThreads; // -1: OpenCV's own default

  private static final Map<String, Settings> PARSED = new ConcurrentHashMap<>();

  static Settings of(String text) {
    return PARSED.computeIfAbsent(text, Settings::new);
  }

  private Settings(String text) {
    Map<String, String> values = new HashMap<>();
    for (String pair : text.split(";")) {
      int eq = pair.indexOf('=');
      if (eq > 0) {
        values.put(pair.substring(0, eq), pair.substring(eq + 1));
      }
    }
    cascade = values.get("cascade");
    scaleFactor = Double.parseDouble(values.get("scale_factor"));
    minNeighbors = Integer.parseInt(values.get("min_neighbors"));
    minSize = Integer.parseInt(values.get("min_size")); // 0: no minimum
    detectWidth = Integer.parseInt(values.get("detect_width"));
    equalizeHistogram = Boolean.parseBoolean(values.get("equalize_histogram"));
    String[] bgr = values.get("box_colour_bgr").split(",");
    boxColourBgr = new double[] {
        Integer.parseInt(bgr[0]), Integer.parseInt(bgr[1]), Integer.parseInt(bgr[2])};
    boxThickness = Integer.parseInt(values.get("box_thickness"));
    jpegQuality = Integer.parseInt(values.get("jpeg_quality"));
    minJpegQuality = Integer.parseInt(values.get("min_jpeg_quality"));
    minFrameWidth = Integer.parseInt(values.get("min_frame_width"));
    maxFrameBytes = Long.parseLong(values.get("max_frame_bytes"));
    maxAgeMs = Long.parseLong(values.get("max_age_ms"));
    minAnalysisIntervalMs = Long.parseLong(values.getOrDefault("min_analysis_interval_ms", "-1"));
    outputMaxBytes = Long.parseLong(values.get("output_max_bytes"));
    deadLetterMaxBytes = Long.parseLong(values.get("dead_letter_max_bytes"));
    outputTopic = values.get("output_topic");
    deadLetterTopic = values.get("dead_letter_topic");
    opencvThreads = Integer.parseInt(values.getOrDefault("opencv_threads", "-1"));
    if (opencvThreads >= 0) {
      // As the Python workers' cv2.setNumThreads: a task per partition already runs per core.
      Detector.setThreads(opencvThreads);
    }
  }
}
