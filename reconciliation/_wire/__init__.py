"""The wire format: every payload the service publishes and records, built in one place
(`payloads`) and described once (`payloads.schema.json`, shipped with the package), for
the Redis sink, the audit history and the readers alike."""
