# mita: the two commands a newcomer needs are `make demo` and `make test`; both set up the
# virtualenv themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mita-installed
STUBS := typings/.mita-stubs
NODE_STAMP := node_modules/.mita-installed

.PHONY: setup demo test test-firmware firmware check-firmware micropython bench cloud sim fleet soak bench-month bench-fleet bench-link hil flash deploy esp32-image romfs-image provision clean

setup: $(STAMP) $(STUBS) $(NODE_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# The ESP32 stubs go into a folder of their own: they carry their own time.pyi and friends.
$(STUBS): $(STAMP)
	$(VENV)/bin/pip install --quiet --no-user --target typings "micropython-esp32-stubs==1.29.*"
	touch $@

# The Node packages in package.json (the dashboard's chart library, the rules evaluator), pinned
# by package-lock.json. Without npm the setup says so once; what needs them skips loudly.
$(NODE_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "setup: npm not found: the dashboard's charts and the rules tests need it (apt-get install npm)"; fi

# The whole story on a laptop: the cloud with its embedded defaults, a customer and a meter
# registered, the real firmware drained to cut-off and paid back on with M-Pesa. A live panel
# in a terminal (m pays, q quits); a plain log and an exit status otherwise.
demo: setup
	$(PY) tools/demo.py

# The 32-bit MicroPython is built first when its source is on this machine (CI has it); without
# it the script says how to get it and the 32-bit tests skip. --bench=frozen: the frozen bench
# image too (the simulator's fakes frozen beside the firmware) for the month-with-link slice.
test: setup
	@# as .ci/run: root on Debian installs the broker the link tests need; otherwise the run
	@# ends with one loud line saying what was not tested (tests/skip_notice.py)
	@command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || [ "$$(id -u)" != 0 ] \
	  || ! command -v apt-get >/dev/null \
	  || (apt-get update -qq && apt-get install -y -qq mosquitto openssl >/dev/null) || true
	$(PYTHON) tools/build_micropython.py --if-source --bench=frozen
	$(PY) -m pytest -q

test-firmware: setup
	$(PY) -m pytest -q tests/firmware tests/test_firmware_on_micropython.py tests/test_firmware_checks.py

# .mpy files for the device, one per firmware module, into build/firmware.
firmware: setup
	$(PY) tools/build_firmware.py --out build/firmware

check-firmware: setup
	$(PY) tools/build_firmware.py --out build/firmware --check

# MicroPython v1.28.0's unix port, 32-bit, from the vendored source (about 40 s on 2 cores, then
# cached): build/micropython/micropython-plain, and micropython-frozen with firmware/manifest.py.
micropython:
	$(PYTHON) tools/build_micropython.py

# The cloud with embedded defaults: SQLite file, local Daraja stand-in, no accounts.
cloud: setup
	$(PY) -m cloud serve

# One simulated meter with its live panel (keys: + - load, p power, w WiFi, r recharge, q quit).
sim: setup
	$(PY) -m simulator run $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(SPEED),--speed $(SPEED))

# Many simulated meters at accelerated time, then a summary table.
fleet: setup
	$(PY) -m simulator fleet --meters $(or $(METERS),100) --days $(or $(DAYS),1) --workers $(or $(WORKERS),2) $(if $(SENSOR),--sensor $(SENSOR))

# The 30-day billed-vs-true energy check on both sensor paths (about 10 minutes).
soak: setup
	MITA_SOAK_DAYS=30 $(PY) -m pytest -q -s tests/simulator/test_scenarios.py -k billed_energy

# The HIL suite: against the simulated board on a pseudo-terminal, or a real one with PORT=.
hil: setup
	$(PY) -m pytest -q hil $(if $(PORT),--port $(PORT)) $(if $(RIG),--rig $(RIG))

# esptool: erase and write a MicroPython image at the right offset for the detected chip.
flash: setup
	$(PY) tools/flash.py --port "$(PORT)" --firmware "$(FIRMWARE)"

# The ESP32_GENERIC image with firmware/manifest.py frozen in, built in Espressif's ESP-IDF
# container from a MicroPython v1.28.0 checkout (SRC=): needs docker and the network.
esp32-image: setup
	$(PY) tools/esp32_image.py image --src "$(SRC)"

# The firmware's .mpy as a ROMFS image (build/esp32/mita.romfs) for a stock v1.25+ image with a
# romfs partition: write it with `mpremote connect PORT romfs deploy build/esp32/romfs-src`.
romfs-image: setup
	$(PY) tools/esp32_image.py romfs

# mpy-cross build, copy lib/meter, main.py and the meter's config.json, verify by hash.
deploy: setup
	$(PY) tools/deploy.py --port "$(PORT)" --meter "$(METER)"

# Write a meter's config.json (and register it with the cloud when given one).
provision: setup
	$(PY) tools/provision.py --meter "$(METER)" $(ARGS)

bench: setup
	$(PY) bench/firmware_bench.py

# The whole meter with its cloud link for 30 simulated days on the 32-bit builds: the smallest
# heap cap, frozen and .mpy in RAM (about 40 minutes; mosquitto needed).
bench-month: setup
	$(PYTHON) tools/build_micropython.py --bench
	$(PY) bench/firmware_month.py

bench-fleet: setup
	$(PY) bench/fleet_bench.py

# Payment-to-relay latency over mosquitto, and the fleet size one cloud serves (~15 minutes).
bench-link: setup
	$(PY) bench/link_latency.py

clean:
	rm -rf build .pytest_cache
