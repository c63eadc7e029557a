package camstream.realtime;

/**
 * Not a record's fault: this JVM cannot analyse frames at all (a Haar cascade missing from the
 * jar, OpenCV's native library that does not load). As camstream.errors.EnvironmentFailure: the
 * per-record function lets it through, so that the task fails with it instead of dead-lettering
 * every frame while the job looks healthy.
 */
public final class EnvironmentFailure extends RuntimeException {
  private static final long serialVersionUID = 1L;

  EnvironmentFailure(String message) {
    super(message);
  }

  EnvironmentFailure(String message, Throwable cause) {
    super(message, cause);
  }
}
