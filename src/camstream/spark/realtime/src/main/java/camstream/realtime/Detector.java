package camstream.realtime;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.opencv.core.Mat;
import org.opencv.core.MatOfRect;
import org.opencv.core.Point;
import org.opencv.core.Rect;
import org.opencv.core.Scalar;
import org.opencv.core.Size;
import org.opencv.imgcodecs.Imgcodecs;
import org.opencv.imgproc.Imgproc;
import org.opencv.objdetect.CascadeClassifier;

/** Haar face detection and drawing, as camstream.core.detection and core.annotation. */
final class Detector {
  static {
    nu.pattern.OpenCV.loadLocally(); // the native library from the OpenCV jar, once per JVM
  }

  private static final Map<String, String> FILES = new ConcurrentHashMap<>();
  /** One classifier per thread: detectMultiScale is not safe on one from several at once. */
  private static final ThreadLocal<Map<String, CascadeClassifier>> CLASSIFIERS =
      ThreadLocal.withInitial(HashMap::new);

  private Detector() {}

  /** OpenCV's own threads in this JVM (global, as cv2.setNumThreads is per process). */
  static void setThreads(int threads) {
    org.opencv.core.Core.setNumThreads(threads);
  }

  private static String cascadeFile(String name) {
    return FILES.computeIfAbsent(name, n -> {
      try (InputStream in = Detector.class.getResourceAsStream("/cascades/" + n)) {
        if (in == null) {
          throw new EnvironmentFailure("no Haar cascade " + n + " in camstream-realtime.jar");
        }
        Path file = Files.createTempFile("camstream-", "-" + n);
        file.toFile().deleteOnExit();
        Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
        return file.toString();
      } catch (IOException e) {
        throw new EnvironmentFailure("cannot unpack Haar cascade " + n + ": " + e, e);
      }
    });
  }

  private static CascadeClassifier classifier(String name) {
    return CLASSIFIERS.get().computeIfAbsent(name, n -> {
      CascadeClassifier classifier = new CascadeClassifier(cascadeFile(n));
      if (classifier.empty()) {
        throw new EnvironmentFailure("cannot load Haar cascade " + n);
      }
      return classifier;
    });
  }

  /** Faces in a checked JPEG as [x1, y1, x2, y2] in its full-size pixels. */
  static List<int[]> detect(byte[] jpeg, Jpeg.Info info, Settings settings) {
    int flags = Imgcodecs.IMREAD_GRAYSCALE;
    if (settings.detectWidth > 0) {
      int[][] reduced = {
          {8, Imgcodecs.IMREAD_REDUCED_GRAYSCALE_8},
          {4, Imgcodecs.IMREAD_REDUCED_GRAYSCALE_4},
          {2, Imgcodecs.IMREAD_REDUCED_GRAYSCALE_2}};
      for (int[] option : reduced) {
        if (info.width() / option[0] >= settings.detectWidth) {
          flags = option[1];
          break;
        }
      }
    }
    Mat grey = Jpeg.decode(jpeg, flags);
    if (settings.detectWidth > 0 && grey.cols() > settings.detectWidth) {
      int height = Math.max(1,
          (int) Math.rint(grey.rows() * (double) settings.detectWidth / grey.cols()));
      Mat small = Mats.own(new Mat());
      Imgproc.resize(grey, small, new Size(settings.detectWidth, height), 0, 0,
          Imgproc.INTER_AREA);
      grey = small;
    }
    double scale = info.width() / (double) grey.cols();
    if (settings.equalizeHistogram) {
      Mat equalized = Mats.own(new Mat());
      Imgproc.equalizeHist(grey, equalized);
      grey = equalized;
    }
    // 0 stays 0: OpenCV's "no minimum" (the cascade's own window), as the reference demo.
    int minSide = settings.minSize > 0 ? (int) Math.rint(settings.minSize / scale) : 0;
    MatOfRect found = Mats.own(new MatOfRect());
    classifier(settings.cascade).detectMultiScale(grey, found, settings.scaleFactor,
        settings.minNeighbors, 0, new Size(minSide, minSide), new Size());
    List<int[]> boxes = new ArrayList<>();
    for (Rect r : found.toArray()) {
      double x = r.x * scale;
      double y = r.y * scale;
      double w = r.width * scale;
      double h = r.height * scale;
      boxes.add(new int[] {
          clip(Math.rint(x), info.width()), clip(Math.rint(y), info.height()),
          clip(Math.rint(x + w), info.width()), clip(Math.rint(y + h), info.height())});
    }
    return boxes;
  }

  private static int clip(double value, int high) {
    return (int) Math.max(0, Math.min(high, value));
  }

  /** A copy of the image with a rectangle per box, in the settings' colour and thickness. */
  static Mat annotate(Mat image, List<int[]> boxes, Settings settings) {
    Mat scene = Mats.own(image.clone());
    int thickness = settings.boxThickness > 0
        ? settings.boxThickness
        : Math.max(2, (int) Math.rint(Math.min(scene.cols(), scene.rows()) / 240.0));
    Scalar colour = new Scalar(settings.boxColourBgr);
    for (int[] b : boxes) {
      Imgproc.rectangle(scene, new Point(b[0], b[1]), new Point(b[2], b[3]), colour, thickness);
    }
    return scene;
  }
}
