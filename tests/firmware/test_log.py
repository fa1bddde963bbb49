from meter.log import Logger, WARN


def test_logger_filters_by_level_and_formats_arguments():
    lines = []
    log = Logger("m1", level=WARN, sink=lines.append)
    log.info("hidden %d", 1)
    log.warn("balance %d cents", 500)
    log.child("pzem").error("crc")
    assert lines == ["WARN m1: balance 500 cents", "ERROR m1.pzem: crc"]


def test_a_format_that_does_not_fit_its_arguments_still_logs_and_never_raises():
    lines = []
    log = Logger("m", sink=lines.append)
    log.warn("overload %d W", "many")
    log.error("two %s %s", 1)
    assert lines[0].startswith("WARN m: overload %d W") and "many" in lines[0]
    assert lines[1].startswith("ERROR m: two %s %s")
