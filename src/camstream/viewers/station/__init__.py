"""The monitoring station in the browser: a live wall of every camera, with alerts.

`store` holds the latest frame per camera, `app` serves the page, API and WebSocket,
`guard` keeps other sites out, `server` runs it all with a Kafka consumer.
"""
