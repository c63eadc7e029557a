"""The cameras: OpenCV capture (webcam, file, RTSP/HTTP) and simulated cameras, to Kafka."""
