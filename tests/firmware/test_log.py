from meter.log import Logger, WARN


def test_logger_filters_by_level_and_formats_arguments():
    lines = []
    log = Logger("m1", level=WARN, sink=lines.append)
    log.info("hidden %d", 1)
    log.warn("balance %d cents", 500)
    log.child("pzem").error("crc")
    assert lines == ["WARN m1: balance 500 cents", "ERROR m1.pzem: crc"]
