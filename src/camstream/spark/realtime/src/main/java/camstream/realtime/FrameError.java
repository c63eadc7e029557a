package camstream.realtime;

/** A record does not follow the frame contract; the message says what is wrong. */
final class FrameError extends RuntimeException {
  FrameError(String message) {
    super(message, null, false, false); // a reason, not a stack trace
  }
}
