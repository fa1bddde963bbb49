"""The meter-cloud MQTT link: settings (which broker), accounts and the ACL rule, the
in-process broker, mosquitto's files, the payloads, the bridge with one MeterChannel per meter,
and `Link`, the one object the rest of the cloud talks to (cloud/link/service.py)."""
