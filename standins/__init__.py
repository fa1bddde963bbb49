"""Local stand-ins for the services mita talks to: Safaricom's Daraja API and Firebase's
Realtime Database REST protocol.

They exist so that `make demo` and `make test` need no account and no internet. They are never
part of the service: nothing under `cloud/` imports them except the embedded-defaults path that
starts the Daraja stand-in when no real Daraja is configured.
"""
