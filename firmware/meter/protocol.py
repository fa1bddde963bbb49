# The meter-cloud protocol's constants (docs/protocol.md), defined once for both sides: the
# firmware imports this module, the cloud runs this very source (cloud/firmware_source.py).
from micropython import const

PROTOCOL_VERSION = const(1)  # the payloads' "v"; a receiver refuses a greater one
RECHARGE_WINDOW = const(64)  # seqs past a source's floor the meter keeps a bit for
MAX_PAYLOAD_BYTES = const(4096)  # larger incoming packets are read past and dropped
