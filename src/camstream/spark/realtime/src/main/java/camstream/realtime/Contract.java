package camstream.realtime;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The frame contract, as camstream.core.contract: headers in, headers out, record sizes. Its
 * names, rules and limits come from camstream/core/contract.json, through the ContractSpec
 * class that the build generates from it (camstream.spark.jars); none is stated here.
 */
final class Contract {
  /** One Kafka header: a name and a value that may be null. */
  record Header(String name, byte[] value) {}

  /** Where a record was read: its Kafka coordinates and timestamp (ms since the epoch). */
  record Source(String topic, int partition, long offset, long timestampMs) {
    /** The source, or null (unknown) when any of its parts is null. */
    static Source of(String topic, Integer partition, Long offset, Long timestampMs) {
      if (topic == null || partition == null || offset == null || timestampMs == null) {
        return null;
      }
      return new Source(topic, partition, offset, timestampMs);
    }

    List<Header> headers() {
      return List.of(
          new Header(ContractSpec.H_SOURCE_TOPIC, topic.getBytes(StandardCharsets.UTF_8)),
          new Header(ContractSpec.H_SOURCE_PARTITION, ascii(Integer.toString(partition))),
          new Header(ContractSpec.H_SOURCE_OFFSET, ascii(Long.toString(offset))),
          new Header(ContractSpec.H_SOURCE_TIMESTAMP_MS, ascii(Long.toString(timestampMs))));
    }
  }

  /** The metadata of a frame, from its headers. */
  record Meta(String cameraId, long seq, long captureTsNs, int width, int height) {}

  /**
   * The rule an input header obeys (contract.json): "text" of min..max characters, an
   * "integer" in [min, max], or "equals_version" (equals the contract's version).
   */
  record Rule(String name, String kind, long min, long max) {}

  static final List<String> INPUT = ContractSpec.INPUT;
  static final Set<String> RESULTS = ContractSpec.RESULTS;
  static final long MAX_FRAME_PIXELS = ContractSpec.MAX_FRAME_PIXELS;
  private static final int MAX_ERROR_BYTES = (int) ContractSpec.MAX_ERROR_BYTES;
  private static final Pattern DECIMAL = Pattern.compile("-?[0-9]+");

  private Contract() {}

  /** Header values as text; contract names must appear once; the last value wins otherwise. */
  static Map<String, String> values(List<Header> headers, Set<String> unique) {
    Map<String, String> result = new HashMap<>();
    Set<String> seen = new HashSet<>();
    for (Header header : headers) {
      if (unique.contains(header.name())) {
        if (!seen.add(header.name())) {
          long count = headers.stream().filter(h -> h.name().equals(header.name())).count();
          throw new FrameError("header " + PythonText.repr(header.name()) + " appears " + count
              + " times (once expected)");
        }
      }
      if (header.value() == null) {
        continue;
      }
      result.put(header.name(), utf8(header.name(), header.value()));
    }
    return result;
  }

  private static String utf8(String name, byte[] raw) {
    CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
        .onMalformedInput(CodingErrorAction.REPORT)
        .onUnmappableCharacter(CodingErrorAction.REPORT);
    try {
      return decoder.decode(ByteBuffer.wrap(raw)).toString();
    } catch (CharacterCodingException e) {
      throw new FrameError("header " + PythonText.repr(name) + " is not valid UTF-8");
    }
  }

  static Meta meta(List<Header> headers) {
    Map<String, String> values = values(headers, Set.copyOf(INPUT));
    List<String> missing = new ArrayList<>();
    for (String name : INPUT) {
      if (!values.containsKey(name)) {
        missing.add(name);
      }
    }
    if (!missing.isEmpty()) {
      throw new FrameError("missing header(s): " + String.join(", ", missing));
    }
    // The version first, as Python: a frame of another version may follow other rules.
    List<Rule> rules = new ArrayList<>(ContractSpec.INPUT_RULES);
    rules.sort(Comparator.comparing(rule -> !rule.kind().equals("equals_version")));
    Map<String, Long> numbers = new HashMap<>();
    for (Rule rule : rules) {
      String raw = values.get(rule.name());
      switch (rule.kind()) {
        case "equals_version" -> {
          if (!raw.equals(ContractSpec.SCHEMA_VERSION)) {
            throw new FrameError("unsupported " + rule.name() + " " + PythonText.repr(raw)
                + " (this job reads " + PythonText.repr(ContractSpec.SCHEMA_VERSION) + ")");
          }
        }
        case "text" -> {
          int length = raw.codePointCount(0, raw.length());
          if (length < rule.min() || length > rule.max()) {
            throw new FrameError(rule.name() + " header must be " + rule.min() + "-" + rule.max()
                + " characters");
          }
        }
        case "integer" -> numbers.put(rule.name(), integer(values, rule.name(), rule.min(),
            rule.max()));
        default -> throw new IllegalStateException("no such rule: " + rule.kind());
      }
    }
    int width = Math.toIntExact(numbers.get(ContractSpec.H_WIDTH));
    int height = Math.toIntExact(numbers.get(ContractSpec.H_HEIGHT));
    if ((long) width * height > MAX_FRAME_PIXELS) {
      throw new FrameError(
          "frame of " + width + "x" + height + " exceeds " + MAX_FRAME_PIXELS + " pixels");
    }
    checkAspectRatio(width, height, "frame");
    return new Meta(values.get(ContractSpec.H_CAMERA_ID), numbers.get(ContractSpec.H_SEQ),
        numbers.get(ContractSpec.H_CAPTURE_TS_NS), width, height);
  }

  /** Refuses a frame (or JPEG: `what`) of a shape no camera gives, as check_aspect_ratio. */
  static void checkAspectRatio(int width, int height, String what) {
    long ratio = ContractSpec.MAX_ASPECT_RATIO;
    if ((long) Math.max(width, height) > ratio * Math.min(width, height)) {
      throw new FrameError(what + " of " + width + "x" + height + " exceeds the aspect-ratio"
          + " limit (its long side at most " + ratio + " times its short one)");
    }
  }

  /** An ASCII decimal integer within [minimum, maximum], as camstream's _parse_int. */
  static long integer(Map<String, String> values, String name, long minimum, long maximum) {
    String raw = values.get(name);
    String shownName = PythonText.repr(name);
    if (!DECIMAL.matcher(raw).matches()) {
      int length = raw.codePointCount(0, raw.length());
      String shown = length <= 40 ? raw : PythonText.prefix(raw, 40) + "... (" + length
          + " characters)";
      throw new FrameError("header " + shownName + " is not an ASCII decimal integer: "
          + PythonText.repr(shown));
    }
    String digits = raw.replaceFirst("^-?0*", "");
    if (digits.length() > 19) { // out of a long's range: no need to convert it to know
      boolean negative = raw.startsWith("-");
      throw new FrameError("header " + shownName + " must be " + (negative ? ">= " + minimum
          : "<= " + maximum) + " (got a number of " + raw.replace("-", "").length() + " digits)");
    }
    java.math.BigInteger value = new java.math.BigInteger(raw);
    if (value.compareTo(java.math.BigInteger.valueOf(minimum)) < 0) {
      throw new FrameError("header " + shownName + " must be >= " + minimum + " (got " + value
          + ")");
    }
    if (value.compareTo(java.math.BigInteger.valueOf(maximum)) > 0) {
      throw new FrameError("header " + shownName + " must be <= " + maximum + " (got "
          + PythonText.prefix(raw, 40) + ")");
    }
    return value.longValue();
  }

  /** All input headers (null values left out) plus the detection results. */
  static List<Header> analytics(List<Header> input, List<int[]> boxes, long analyzedTsNs,
      int[] size, List<Header> extra) {
    List<Header> out = new ArrayList<>();
    for (Header header : input) {
      if (header.value() == null || RESULTS.contains(header.name())) {
        continue;
      }
      if (size != null && header.name().equals(ContractSpec.H_WIDTH)) {
        out.add(new Header(ContractSpec.H_WIDTH, ascii(Integer.toString(size[0]))));
      } else if (size != null && header.name().equals(ContractSpec.H_HEIGHT)) {
        out.add(new Header(ContractSpec.H_HEIGHT, ascii(Integer.toString(size[1]))));
      } else {
        out.add(header);
      }
    }
    out.add(new Header(ContractSpec.H_FACES, ascii(Integer.toString(boxes.size()))));
    out.add(new Header(ContractSpec.H_BOXES_XYXY, ascii(boxesJson(boxes))));
    out.add(new Header(ContractSpec.H_ANALYZED_TS_NS, ascii(Long.toString(analyzedTsNs))));
    out.addAll(extra);
    return out;
  }

  static String boxesJson(List<int[]> boxes) {
    StringBuilder json = new StringBuilder("[");
    for (int i = 0; i < boxes.size(); i++) {
      int[] b = boxes.get(i);
      json.append(i == 0 ? "" : ",").append('[').append(b[0]).append(',').append(b[1])
          .append(',').append(b[2]).append(',').append(b[3]).append(']');
    }
    return json.append(']').toString();
  }

  /**
   * The original headers untouched (null values stay null), the reason and the time, and, when
   * known (non-null), where the record came from and how large its value was.
   */
  static List<Header> deadLetter(List<Header> input, String error, long failedTsNs,
      Source source, Integer valueBytes) {
    byte[] reason = error.getBytes(StandardCharsets.UTF_8);
    if (reason.length > MAX_ERROR_BYTES) {
      CharsetDecoder lenient = StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.IGNORE);
      String cut;
      try {
        CharBuffer chars = lenient.decode(ByteBuffer.wrap(reason, 0, MAX_ERROR_BYTES - 3));
        cut = chars.toString();
      } catch (CharacterCodingException e) {
        cut = "";
      }
      reason = (cut + "...").getBytes(StandardCharsets.UTF_8);
    }
    List<Header> out = new ArrayList<>(input);
    out.add(new Header(ContractSpec.H_ERROR, reason));
    out.add(new Header(ContractSpec.H_FAILED_TS_NS, ascii(Long.toString(failedTsNs))));
    if (source != null) {
      out.addAll(source.headers());
    }
    if (valueBytes != null) {
      out.add(new Header(ContractSpec.H_VALUE_BYTES, ascii(Integer.toString(valueBytes))));
    }
    return out;
  }

  /**
   * An upper bound on what a broker counts against max.message.bytes for this record,
   * uncompressed (what the sink writes counts whole, whatever compression let the input in).
   */
  static long recordBytes(byte[] key, byte[] value, List<Header> headers) {
    long size = ContractSpec.RECORD_BATCH_HEADER_BYTES + 5 + 1 + 10 + 5;
    size += 5 + (key == null ? 0 : key.length) + 5 + (value == null ? 0 : value.length) + 5;
    for (Header header : headers) {
      size += headerBytes(header);
    }
    return size;
  }

  /** What one header adds to recordBytes. */
  static long headerBytes(Header header) {
    return 5 + header.name().getBytes(StandardCharsets.UTF_8).length + 5
        + (header.value() == null ? 0 : header.value().length);
  }

  /** A dead letter's key, and the header that says it was hashed (when it was). */
  record BoundedKey(byte[] key, List<Header> hashed) {}

  static BoundedKey boundedKey(byte[] key) {
    if (key == null || key.length <= ContractSpec.MAX_KEY_BYTES) {
      return new BoundedKey(key, List.of());
    }
    String note = key.length + " bytes replaced by their SHA-256 (hex): a dead letter keeps keys"
        + " of at most " + ContractSpec.MAX_KEY_BYTES + " bytes";
    try {
      byte[] digest = MessageDigest.getInstance("SHA-256").digest(key);
      StringBuilder hex = new StringBuilder();
      for (byte b : digest) {
        hex.append(String.format("%02x", b));
      }
      return new BoundedKey(ascii(hex.toString()),
          List.of(new Header(ContractSpec.H_KEY_HASHED, note.getBytes(StandardCharsets.UTF_8))));
    } catch (NoSuchAlgorithmException e) {
      throw new EnvironmentFailure("this JVM has no SHA-256", e);
    }
  }

  /**
   * For cutHeaders: 1 (goes last) for the first header of each contract name with a value of a
   * valid length, 0 for any other (repeats, giants and headers of its own).
   */
  static int[] contractFirstRanks(List<Header> headers) {
    int[] ranks = new int[headers.size()];
    Set<String> seen = new HashSet<>();
    for (int i = 0; i < ranks.length; i++) {
      Header header = headers.get(i);
      boolean first = INPUT.contains(header.name()) && !seen.contains(header.name());
      seen.add(header.name());
      int length = header.value() == null ? 0 : header.value().length;
      ranks[i] = first && length <= ContractSpec.MAX_CONTRACT_HEADER_BYTES ? 1 : 0;
    }
    return ranks;
  }

  /** The headers kept by cutHeaders, in their order; how many went and their bytes. */
  record Cut(List<Header> kept, int count, long bytes) {}

  /**
   * As camstream.core.contract.cut_headers: the headers without those that must go so that the
   * ones that may go take at most `room` bytes. Rank -1 stays whatever; of the others the lower
   * rank goes first, and in a rank the largest first (of two alike, the later).
   */
  static Cut cutHeaders(List<Header> headers, int[] ranks, long room) {
    long[] sizes = new long[headers.size()];
    long total = 0;
    List<Integer> candidates = new ArrayList<>();
    for (int i = 0; i < sizes.length; i++) {
      if (ranks[i] >= 0) {
        sizes[i] = headerBytes(headers.get(i));
        total += sizes[i];
        candidates.add(i);
      }
    }
    candidates.sort(Comparator.<Integer>comparingInt(i -> ranks[i])
        .thenComparing(i -> -sizes[i]).thenComparing(i -> -i));
    boolean[] gone = new boolean[sizes.length];
    int count = 0;
    long bytes = 0;
    for (int index : candidates) {
      if (total <= room) {
        break;
      }
      gone[index] = true;
      total -= sizes[index];
      count++;
      bytes += sizes[index];
    }
    List<Header> kept = new ArrayList<>();
    for (int i = 0; i < sizes.length; i++) {
      if (!gone[i]) {
        kept.add(headers.get(i));
      }
    }
    return new Cut(kept, count, bytes);
  }

  /** The header that says how many of a record's own headers were cut, and their bytes. */
  static Header headersDroppedNote(long count, long bytes) {
    String note = count + " original headers left out (" + bytes + " bytes, the largest first):"
        + " they exceed the topic's limit";
    return new Header(ContractSpec.H_HEADERS_DROPPED, note.getBytes(StandardCharsets.UTF_8));
  }

  static long headersBytes(List<Header> headers) {
    long total = 0;
    for (Header header : headers) {
      total += headerBytes(header);
    }
    return total;
  }

  static byte[] ascii(String text) {
    return text.getBytes(StandardCharsets.US_ASCII);
  }
}
