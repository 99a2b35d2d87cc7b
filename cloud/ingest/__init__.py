"""Cloud ingest: MQTT in, validated, telemetry to the store and state to the database."""
