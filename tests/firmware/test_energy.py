from meter.energy import EnergyAccount


def test_first_reading_sets_the_baseline_and_bills_nothing():
    acc = EnergyAccount()
    assert acc.update(123456) == 0
    assert acc.update(123458) == 2
    assert acc.total_wh == 2


def test_counter_going_backwards_is_a_restart_not_negative_consumption():
    acc = EnergyAccount()
    acc.update(5000)
    assert acc.update(5003) == 3
    # The module's counter was reset: it now reads 1 Wh used since the reset.
    assert acc.update(1) == 1
    assert acc.restarts == 1
    assert acc.update(4) == 3
    assert acc.total_wh == 7


def test_a_swapped_module_with_a_large_counter_is_not_billed_as_a_jump():
    acc = EnergyAccount(max_power_w=23000)
    acc.update(100)
    assert acc.update(101) == 1
    # A different module reading 7 MWh appears: one second cannot hold that.
    assert acc.update(7000000) == 0
    assert acc.jumps == 1
    # Billing continues from the new baseline.
    assert acc.update(7000002) == 2


def test_restart_to_an_implausibly_large_value_bills_nothing():
    acc = EnergyAccount(max_power_w=2300)
    acc.update(900000)
    acc.update(900001)
    assert acc.update(500000) == 0
    assert acc.restarts == 1


def test_missed_readings_lose_nothing():
    acc = EnergyAccount(max_power_w=2300)
    acc.update(0)
    acc.fail()
    acc.fail()
    assert acc.consecutive_failures == 2
    # Three seconds later at 2 kW: the delta covers the gap.
    assert acc.update(2, elapsed_ms=3000) == 2
    assert acc.consecutive_failures == 0
    assert acc.failures == 2


def test_sensor_fault_after_consecutive_failures():
    acc = EnergyAccount()
    for _ in range(4):
        acc.fail()
    assert not acc.sensor_fault(after=5)
    acc.fail()
    assert acc.sensor_fault(after=5)
    acc.update(10)
    assert not acc.sensor_fault(after=5)


def test_s0_counts_convert_to_wh_with_the_remainder_carried():
    # 3200 impulses/kWh: 0.3125 Wh per pulse; 32 pulses are exactly 10 Wh.
    acc = EnergyAccount(counts_per_kwh=3200)
    acc.update(0)
    billed = 0
    for n in range(1, 33):
        billed += acc.update(n)
    assert billed == 10
    assert acc.remainder == 0


def test_state_round_trip_continues_from_the_persisted_counter():
    acc = EnergyAccount(counts_per_kwh=3200)
    acc.update(0)
    acc.update(5)  # 1.5625 Wh: 1 billed, remainder carried
    saved = acc.state()
    again = EnergyAccount(counts_per_kwh=3200, state=saved)
    # After a reboot the first reading is a delta from the persisted counter.
    assert again.update(11) == acc.update(11)
    assert again.total_wh == acc.total_wh


def test_boot_delta_after_an_outage_of_the_board_alone_is_billed():
    # The PZEM kept counting while the ESP32 was rebooting: bill it, within the boot bound.
    acc = EnergyAccount(state={"counter": 1000, "rem": 0, "wh": 0}, boot_max_wh=10000)
    assert acc.update(1500) == 500
    acc2 = EnergyAccount(state={"counter": 1000, "rem": 0, "wh": 0}, boot_max_wh=10000)
    assert acc2.update(1000 + 20000) == 0
    assert acc2.jumps == 1
