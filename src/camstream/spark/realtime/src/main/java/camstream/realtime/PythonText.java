package camstream.realtime;

/**
 * Text as Python shows it, so that a dead letter's reason is the same text from either
 * implementation: repr() of a str and of bytes, and slices by code point (Python's len and
 * [:n] count code points, Java's UTF-16 units).
 */
final class PythonText {
  private PythonText() {}

  /** Python's repr(text): single quotes unless the text has ' and no ", escapes as Python. */
  static String repr(String text) {
    char quote = text.indexOf('\'') >= 0 && text.indexOf('"') < 0 ? '"' : '\'';
    StringBuilder out = new StringBuilder().append(quote);
    text.codePoints().forEach(cp -> {
      if (cp == quote || cp == '\\') {
        out.append('\\').appendCodePoint(cp);
      } else if (cp == '\t') {
        out.append("\\t");
      } else if (cp == '\n') {
        out.append("\\n");
      } else if (cp == '\r') {
        out.append("\\r");
      } else if (cp < 0x20 || cp == 0x7F) {
        out.append(String.format("\\x%02x", cp));
      } else if (cp < 0x7F || printable(cp)) {
        out.appendCodePoint(cp);
      } else if (cp <= 0xFF) {
        out.append(String.format("\\x%02x", cp));
      } else if (cp <= 0xFFFF) {
        out.append(String.format("\\u%04x", cp));
      } else {
        out.append(String.format("\\U%08x", cp));
      }
    });
    return out.append(quote).toString();
  }

  /** Python's repr(data) of bytes: b'...', printable ASCII as is, the rest as \xNN. */
  static String repr(byte[] data) {
    boolean single = false;
    boolean dbl = false;
    for (byte b : data) {
      single |= b == '\'';
      dbl |= b == '"';
    }
    char quote = single && !dbl ? '"' : '\'';
    StringBuilder out = new StringBuilder("b").append(quote);
    for (byte b : data) {
      int c = b & 0xFF;
      if (c == quote || c == '\\') {
        out.append('\\').append((char) c);
      } else if (c == '\t') {
        out.append("\\t");
      } else if (c == '\n') {
        out.append("\\n");
      } else if (c == '\r') {
        out.append("\\r");
      } else if (c < 0x20 || c >= 0x7F) {
        out.append(String.format("\\x%02x", c));
      } else {
        out.append((char) c);
      }
    }
    return out.append(quote).toString();
  }

  /** Python's text[:count]: the first `count` code points. */
  static String prefix(String text, int count) {
    int points = text.codePointCount(0, text.length());
    return points <= count ? text : text.substring(0, text.offsetByCodePoints(0, count));
  }

  /** As Python's str.isprintable for one character beyond ASCII. */
  private static boolean printable(int cp) {
    switch (Character.getType(cp)) {
      case Character.CONTROL, Character.FORMAT, Character.SURROGATE, Character.PRIVATE_USE,
          Character.UNASSIGNED, Character.LINE_SEPARATOR, Character.PARAGRAPH_SEPARATOR,
          Character.SPACE_SEPARATOR:
        return false;
      default:
        return true;
    }
  }
}
