package camstream.realtime;

import camstream.realtime.Contract.Header;
import camstream.realtime.Contract.Meta;
import camstream.realtime.Contract.Source;
import java.math.BigDecimal;
import java.io.UncheckedIOException;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF8;
import org.opencv.core.Mat;
import org.opencv.imgcodecs.Imgcodecs;
import scala.collection.Iterator;
import scala.collection.Seq;

/**
 * The per-record function for Spark's Real-time Mode: what the micro-batch job does to a record
 * (camstream.core.batch.process_batch of that one record, without the motion gate) in Java, as
 * a UDF (Real-time Mode runs JVM UDFs, not Python ones).
 *
 * <p>(key, value, headers, where the record was read: topic, partition, offset and timestamp in
 * ms, settings) in; a row for the Kafka sink out: key, value, headers and the topic, the output
 * topic for an analysed frame or the dead-letter topic for a record that could not be, with the
 * reason and the record's source (null source arguments: unknown, no source headers). It never
 * throws for a record: whatever fails on one (a RuntimeException or a StackOverflowError) makes
 * it a dead letter. A broken environment is no record's fault and fails the task: an
 * EnvironmentFailure (a missing cascade), an I/O error, a LinkageError (OpenCV's native library
 * that does not load), running out of memory (as camstream.errors.ENVIRONMENT_FAILURES). Every
 * row it returns fits its topic, however large the record came. Kept equal to the Python
 * function by camstream's tests.
 *
 * <p>Every time it writes (analyzed_ts_ns, failed_ts_ns) and every age it judges comes from its
 * clock, as Python's `clock=`: the system clock for the UDF Spark makes (the no-argument
 * constructor), another one given to the other constructor.
 */
public final class ProcessRecord
    implements UDF8<byte[], byte[], Seq<Row>, String, Integer, Long, Long, String, Row> {
  private static final long serialVersionUID = 2L;

  // A java.time.Clock rather than a LongSupplier: the JDK's clocks are serializable (Spark
  // ships the UDF to its executors) and a fixed one can be made without compiling any code.
  private final Clock clock;

  /** The function as Spark registers it by class name: the system clock. */
  public ProcessRecord() {
    this(Clock.systemUTC());
  }

  /** The function reading `clock` for every time it writes or judges. */
  public ProcessRecord(Clock clock) {
    this.clock = Objects.requireNonNull(clock, "clock");
  }

  @Override
  public Row call(byte[] key, byte[] value, Seq<Row> headers, String topic, Integer partition,
      Long offset, Long timestampMs, String settingsText) {
    Settings settings = Settings.of(settingsText);
    Source source = Source.of(topic, partition, offset, timestampMs);
    List<Header> pairs = new ArrayList<>();
    Outcome outcome;
    try {
      if (headers != null) {
        Iterator<Row> rows = headers.iterator();
        while (rows.hasNext()) {
          Row row = rows.next();
          pairs.add(new Header(row.getString(0), row.isNullAt(1) ? null : (byte[]) row.get(1)));
        }
      }
      outcome = process(key, value, pairs, settings);
    } catch (EnvironmentFailure failure) {
      throw failure; // not this record's fault: every record would fail alike
    } catch (UncheckedIOException | LinkageError failure) {
      throw new EnvironmentFailure("this executor cannot process frames (" + causes(failure)
          + "); the task fails instead of dead-lettering every record, which are not at fault",
          failure);
    } catch (RuntimeException | StackOverflowError failure) { // one record never stops the job
      outcome = deadLetter(key, value, pairs, reason(failure), settings, source);
    } finally {
      Mats.releaseAll(); // the outcome holds bytes only: the record's images can go now
    }
    List<Row> headerRows = new ArrayList<>();
    for (Header header : outcome.headers()) {
      headerRows.add(RowFactory.create(header.name(), header.value()));
    }
    String to = outcome.ok() ? settings.outputTopic : settings.deadLetterTopic;
    return RowFactory.create(outcome.key(), outcome.value(), headerRows, to);
  }

  /** What the job writes for one record. */
  record Outcome(boolean ok, byte[] key, byte[] value, List<Header> headers) {}

  private static String reason(Throwable failure) {
    return failure.getClass().getSimpleName() + ": " + failure.getMessage();
  }

  /** The failure's reason and its causes' (a class that failed to initialise hides why). */
  private static String causes(Throwable failure) {
    StringBuilder text = new StringBuilder(reason(failure));
    for (Throwable cause = failure.getCause();
        cause != null && text.length() < ContractSpec.MAX_ERROR_BYTES; cause = cause.getCause()) {
      text.append(", caused by ").append(reason(cause));
    }
    return text.toString();
  }

  Outcome process(byte[] key, byte[] value, List<Header> headers, Settings settings) {
    if (value == null) {
      throw new FrameError("frame value is null");
    }
    if (settings.maxFrameBytes >= 0 && value.length > settings.maxFrameBytes) {
      throw new FrameError("frame value is " + value.length + " bytes, over the "
          + settings.maxFrameBytes + "-byte limit (CAMSTREAM_MAX_FRAME_BYTES)");
    }
    Meta meta = Contract.meta(headers);
    byte[] cameraKey = meta.cameraId().getBytes(StandardCharsets.UTF_8);
    if (key == null) {
      throw new FrameError("record key is null: it must be the camera id ("
          + PythonText.repr(meta.cameraId())
          + "), which keeps a camera's frames on one partition and in order");
    }
    if (!Arrays.equals(key, cameraKey)) {
      throw new FrameError("record key " + PythonText.repr(Arrays.copyOf(key, Math.min(40,
          key.length))) + " differs from camera_id " + PythonText.repr(meta.cameraId()));
    }
    Jpeg.Info info = Jpeg.check(value);
    if (info.width() != meta.width() || info.height() != meta.height()) {
      throw new FrameError("width/height headers say " + meta.width() + "x" + meta.height()
          + " but the JPEG is " + info.width() + "x" + info.height());
    }
    byte[] jpeg = Arrays.copyOf(value, info.end()); // a trailer after the image is not passed on
    if (settings.maxAgeMs >= 0) {
      Outcome stale = staleOutput(meta, cameraKey, jpeg, headers, settings);
      if (stale != null) {
        return stale;
      }
    }
    List<int[]> boxes = Detector.detect(jpeg, info, settings);
    if (boxes.isEmpty()) {
      return output(meta, cameraKey, jpeg, null, boxes, headers, settings, List.of());
    }
    Mat image = Jpeg.decode(jpeg, Imgcodecs.IMREAD_COLOR);
    Mat annotated = Detector.annotate(image, boxes, settings);
    byte[] drawn = Jpeg.encode(annotated, settings.jpegQuality);
    return output(meta, cameraKey, drawn, annotated, boxes, headers, settings, List.of());
  }

  /**
   * Under the `live` policy, the output of a frame too old to analyse, else null; with the
   * starvation guard (minAnalysisIntervalMs), a frame of a starving camera is analysed however
   * old, and a frame to analyse is recorded as its camera's newest analysed one.
   */
  private Outcome staleOutput(Meta meta, byte[] cameraKey, byte[] jpeg,
      List<Header> headers, Settings settings) {
    // As Python: the exact difference (both >= 0: it fits a long) as a double, over 1e6.
    double ageMs = (now() - meta.captureTsNs()) / 1e6;
    boolean fresh = ageMs <= settings.maxAgeMs;
    if (settings.minAnalysisIntervalMs >= 0) {
      fresh = FreshnessGuard.forInterval(settings.minAnalysisIntervalMs)
          .claim(meta.cameraId(), meta.captureTsNs(), fresh);
    }
    if (fresh) {
      return null;
    }
    Jpeg.decode(jpeg, Imgcodecs.IMREAD_REDUCED_GRAYSCALE_8); // validated, not analysed
    // As Python's f"{age_ms:.0f}": the double's exact value, rounded half to even.
    String age = new BigDecimal(ageMs).setScale(0, RoundingMode.HALF_EVEN).toPlainString();
    String skipped = "stale: " + age + " ms old > " + settings.maxAgeMs + " ms";
    return output(meta, cameraKey, jpeg, null, List.of(), headers, settings,
        List.of(new Header(ContractSpec.H_SKIPPED, skipped.getBytes(StandardCharsets.UTF_8))));
  }

  /**
   * The output record, re-encoded smaller when it would not fit the output topic. As Python:
   * headers that alone leave no room for any frame are cut first (the input's own outside the
   * contract, the largest first, until the frame fits as it is or none is left).
   */
  private Outcome output(Meta meta, byte[] key, byte[] jpeg, Mat image, List<int[]> boxes,
      List<Header> headers, Settings settings, List<Header> extra) {
    long limit = settings.outputMaxBytes;
    List<Header> out = Contract.analytics(headers, boxes, now(), null, extra);
    if (Contract.recordBytes(key, jpeg, out) <= limit) {
      return new Outcome(true, key, jpeg, out);
    }
    if (Contract.recordBytes(key, null, out) > limit) {
      Passed passed = cutPassed(key, jpeg, headers, boxes, extra, limit);
      headers = passed.headers();
      extra = passed.extra();
      out = Contract.analytics(headers, boxes, now(), null, extra);
      if (Contract.recordBytes(key, jpeg, out) <= limit) {
        return new Outcome(true, key, jpeg, out);
      }
    }
    Mat current = image != null ? image : Jpeg.decode(jpeg, Imgcodecs.IMREAD_COLOR);
    int quality = Math.min(settings.jpegQuality, 100);
    int lowest = Math.min(settings.minJpegQuality, settings.jpegQuality);
    while (true) {
      byte[] candidate = Jpeg.encode(current, quality);
      List<Header> candidateHeaders = fittedHeaders(meta, current, quality, boxes, headers, extra);
      long size = Contract.recordBytes(key, candidate, candidateHeaders);
      if (size <= limit) {
        return new Outcome(true, key, candidate, candidateHeaders);
      }
      if (quality > lowest) {
        quality = Math.max(lowest, quality - 10);
        continue;
      }
      int smaller = (current.cols() * 3) / 4;
      if (smaller < settings.minFrameWidth) {
        throw new FrameError("the annotated frame does not fit the output topic: still " + size
            + " bytes at JPEG quality " + quality + " and " + current.cols() + "x"
            + current.rows() + ", over its max.message.bytes of " + limit
            + " (raise it, or lower CAMSTREAM_MIN_JPEG_QUALITY or CAMSTREAM_MIN_FRAME_WIDTH)");
      }
      current = Jpeg.resizeToWidth(current, smaller);
    }
  }

  /** The input headers an output keeps, and its extra headers with the note of those cut. */
  record Passed(List<Header> headers, List<Header> extra) {}

  private Passed cutPassed(byte[] key, byte[] jpeg, List<Header> headers,
      List<int[]> boxes, List<Header> extra, long limit) {
    int[] ranks = new int[headers.size()];
    List<Header> fixed = new ArrayList<>();
    List<Header> passed = new ArrayList<>();
    for (int i = 0; i < ranks.length; i++) {
      Header header = headers.get(i);
      boolean stays = header.value() == null || Contract.RESULTS.contains(header.name())
          || Contract.INPUT.contains(header.name());
      ranks[i] = stays ? -1 : 0;
      (stays ? fixed : passed).add(header);
    }
    // Room for the note at its longest (every passed header gone), so that it fits too.
    List<Header> withNote = new ArrayList<>(extra);
    withNote.add(Contract.headersDroppedNote(passed.size(), Contract.headersBytes(passed)));
    long room = limit - Contract.recordBytes(key, jpeg,
        Contract.analytics(fixed, boxes, now(), null, withNote));
    Contract.Cut cut = Contract.cutHeaders(headers, ranks, room);
    List<Header> noted = new ArrayList<>(extra);
    noted.add(Contract.headersDroppedNote(cut.count(), cut.bytes()));
    return new Passed(cut.kept(), noted);
  }

  private List<Header> fittedHeaders(Meta meta, Mat image, int quality,
      List<int[]> boxes, List<Header> headers, List<Header> extra) {
    double scale = image.cols() / (double) meta.width();
    List<int[]> scaled = new ArrayList<>();
    for (int[] b : boxes) {
      scaled.add(new int[] {
          (int) Math.rint(b[0] * scale), (int) Math.rint(b[1] * scale),
          (int) Math.rint(b[2] * scale), (int) Math.rint(b[3] * scale)});
    }
    String fitted = "{\"jpeg_quality\":" + quality + ",\"source_width\":" + meta.width()
        + ",\"source_height\":" + meta.height() + "}";
    List<Header> all = new ArrayList<>(extra);
    all.add(new Header(ContractSpec.H_FITTED, fitted.getBytes(StandardCharsets.UTF_8)));
    return Contract.analytics(headers, scaled, now(), new int[] {image.cols(), image.rows()}, all);
  }

  /**
   * The record as it came, plus the reason, the time and, when known, where it came from; it
   * fits the dead-letter topic, however large the record came. As
   * camstream.core.records.dead_letter: a key longer than any camera id is replaced by its
   * SHA-256 (key_hashed says so); too large, the value is left out (value_dropped says so);
   * headers that even without the value do not fit are cut, the largest first, the contract's
   * own last (headers_dropped says how many), and the value stays if it fits beside those kept.
   * The dead letter's own headers always stay.
   */
  Outcome deadLetter(byte[] key, byte[] value, List<Header> headers, String error,
      Settings settings, Source source) {
    Integer size = value == null ? null : value.length;
    Contract.BoundedKey bounded = Contract.boundedKey(key);
    key = bounded.key();
    List<Header> own = new ArrayList<>(Contract.deadLetter(List.of(), error, now(), source, size));
    own.addAll(bounded.hashed());
    long limit = settings.deadLetterMaxBytes;
    if (Contract.recordBytes(key, value, concat(headers, own)) <= limit) {
      return new Outcome(false, key, value, concat(headers, own));
    }
    String note = (size == null ? 0 : size) + " bytes left out: the dead letter would"
        + " exceed the dead-letter topic's max.message.bytes of " + limit;
    Header valueDropped =
        new Header(ContractSpec.H_VALUE_DROPPED, note.getBytes(StandardCharsets.UTF_8));
    List<Header> ownDropped = concat(own, List.of(valueDropped));
    if (Contract.recordBytes(key, null, concat(headers, ownDropped)) <= limit) {
      return new Outcome(false, key, null, concat(headers, ownDropped));
    }
    // The note at its longest (every original header gone), so that it fits too.
    Header longest = Contract.headersDroppedNote(headers.size(), Contract.headersBytes(headers));
    long room = limit - Contract.recordBytes(key, null, concat(ownDropped, List.of(longest)));
    Contract.Cut cut = Contract.cutHeaders(headers, Contract.contractFirstRanks(headers), room);
    Header cutNote = Contract.headersDroppedNote(cut.count(), cut.bytes());
    List<Header> kept = concat(concat(cut.kept(), own), List.of(cutNote));
    if (Contract.recordBytes(key, value, kept) <= limit) {
      return new Outcome(false, key, value, kept);
    }
    return new Outcome(false, key, null, concat(concat(cut.kept(), ownDropped), List.of(cutNote)));
  }

  private static List<Header> concat(List<Header> first, List<Header> second) {
    List<Header> all = new ArrayList<>(first);
    all.addAll(second);
    return all;
  }

  /** Unix time in nanoseconds by the clock (the system's: microseconds on Linux), as
   * Python's time.time_ns. */
  long now() {
    Instant instant = clock.instant();
    return instant.getEpochSecond() * 1_000_000_000L + instant.getNano();
  }
}
