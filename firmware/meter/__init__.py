# mita meter firmware package (installed on the device as /lib/meter).
VERSION = "0.1.0"
