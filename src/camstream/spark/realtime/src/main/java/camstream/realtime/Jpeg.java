package camstream.realtime;

import org.opencv.core.Mat;
import org.opencv.core.MatOfByte;
import org.opencv.core.MatOfInt;
import org.opencv.core.Size;
import org.opencv.imgcodecs.Imgcodecs;
import org.opencv.imgproc.Imgproc;

/** The JPEG codec, as camstream.core.jpeg: structure checks, decoding as stored, encoding. */
final class Jpeg {
  /** Width, height, and the offset just past the end-of-image marker. */
  record Info(int width, int height, int end) {}

  /** Pixels as stored: an EXIF Orientation tag is ignored. */
  static final int AS_STORED = Imgcodecs.IMREAD_IGNORE_ORIENTATION;

  private Jpeg() {}

  private static int u8(byte[] data, int pos) {
    return data[pos] & 0xFF;
  }

  private static int be16(byte[] data, int pos) {
    return (u8(data, pos) << 8) | u8(data, pos + 1);
  }

  private static boolean isSof(int marker) {
    return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8
        && marker != 0xCC;
  }

  private static boolean isStandalone(int marker) {
    return marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7);
  }

  /** Walk the segments to the end-of-image marker, without decoding pixels. */
  static Info scan(byte[] jpeg) {
    if (jpeg == null || jpeg.length == 0) {
      throw new FrameError("empty frame value");
    }
    if (jpeg.length < 3 || u8(jpeg, 0) != 0xFF || u8(jpeg, 1) != 0xD8 || u8(jpeg, 2) != 0xFF) {
      throw new FrameError("value is not a JPEG (missing FF D8 FF start marker)");
    }
    int[] size = null;
    int pos = 2;
    int n = jpeg.length;
    while (pos + 2 <= n) {
      if (u8(jpeg, pos) != 0xFF) {
        throw new FrameError("JPEG is corrupt: expected a marker at byte " + pos);
      }
      int marker = u8(jpeg, pos + 1);
      if (marker == 0xFF) {
        pos += 1;
        continue;
      }
      if (marker == 0xD9) {
        if (size == null) {
          throw new FrameError("JPEG is corrupt: no start-of-frame segment before its end");
        }
        return new Info(size[0], size[1], pos + 2);
      }
      if (isStandalone(marker)) {
        pos += 2;
        continue;
      }
      if (pos + 4 > n) {
        break;
      }
      int length = be16(jpeg, pos + 2);
      if (length < 2) {
        throw new FrameError("JPEG is corrupt: bad segment length at byte " + pos);
      }
      if (isSof(marker) && size == null) {
        if (pos + 9 > n) {
          break;
        }
        int height = be16(jpeg, pos + 5);
        int width = be16(jpeg, pos + 7);
        if (width == 0 || height == 0) {
          throw new FrameError(
              "JPEG declares a zero-size image (" + width + "x" + height + ")");
        }
        size = new int[] {width, height};
      }
      pos += 2 + length;
      if (marker == 0xDA) {
        if (size == null) {
          throw new FrameError("JPEG is corrupt: image data before the start-of-frame segment");
        }
        // The scan ends at the first FF not followed by 00 (stuffing), RSTn or another FF.
        int found = -1;
        for (int i = pos; i + 1 < n; i++) {
          if (u8(jpeg, i) == 0xFF) {
            int next = u8(jpeg, i + 1);
            if (next != 0x00 && next != 0xFF && (next < 0xD0 || next > 0xD7)) {
              found = i;
              break;
            }
          }
        }
        if (found < 0) {
          break;
        }
        pos = found;
      }
    }
    if (size == null) {
      throw new FrameError("JPEG is truncated or corrupt: no start-of-frame segment");
    }
    throw new FrameError("JPEG is truncated (no end-of-image marker)");
  }

  static Info check(byte[] jpeg) {
    Info info = scan(jpeg);
    if ((long) info.width() * info.height() > Contract.MAX_FRAME_PIXELS) {
      throw new FrameError("JPEG of " + info.width() + "x" + info.height() + " exceeds the "
          + Contract.MAX_FRAME_PIXELS + "-pixel limit");
    }
    Contract.checkAspectRatio(info.width(), info.height(), "JPEG");
    return info;
  }

  static Mat decode(byte[] jpeg, int flags) {
    check(jpeg);
    Mat image = Mats.own(Imgcodecs.imdecode(Mats.own(new MatOfByte(jpeg)), flags | AS_STORED));
    if (image == null || image.empty()) {
      throw new FrameError("JPEG could not be decoded (corrupt or truncated)");
    }
    return image;
  }

  static byte[] encode(Mat image, int quality) {
    MatOfByte buffer = Mats.own(new MatOfByte());
    if (!Imgcodecs.imencode(".jpg", image, buffer,
        Mats.own(new MatOfInt(Imgcodecs.IMWRITE_JPEG_QUALITY, quality)))) {
      throw new FrameError("JPEG encoding failed");
    }
    return buffer.toArray();
  }

  static Mat resizeToWidth(Mat image, int width) {
    if (width <= 0 || image.cols() <= width) {
      return image;
    }
    int height = Math.max(1, (int) Math.rint(image.rows() * (double) width / image.cols()));
    Mat smaller = Mats.own(new Mat());
    Imgproc.resize(image, smaller, new Size(width, height), 0, 0, Imgproc.INTER_AREA);
    return smaller;
  }
}
