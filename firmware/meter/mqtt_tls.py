# TLS for the meter's MQTT client: a context that verifies the broker (MicroPython's default
# verifies nothing). Apart from meter.mqtt so a meter without TLS never imports ssl.
def tls_context(cafile=None, cadata=None):
    """A client TLS context that verifies the broker: against cafile (a path) or cadata (the CA
    certificate's DER bytes). MicroPython's own default context verifies nothing, so a meter
    that talks TLS should always be given one of these."""
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cadata is not None:
        context.load_verify_locations(cadata=cadata)
    elif cafile is not None:
        context.load_verify_locations(cafile)
    context.verify_mode = ssl.CERT_REQUIRED
    return context
