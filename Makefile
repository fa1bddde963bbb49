# mita: the two commands a newcomer needs are `make demo` and `make test`; both set up the
# virtualenv themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mita-installed
STUBS := typings/.mita-stubs

.PHONY: setup test test-firmware firmware check-firmware bench cloud clean

setup: $(STAMP) $(STUBS)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# The ESP32 stubs go into a folder of their own: they carry their own time.pyi and friends.
$(STUBS): $(STAMP)
	$(VENV)/bin/pip install --quiet --no-user --target typings "micropython-esp32-stubs==1.29.*"
	touch $@

test: setup
	$(PY) -m pytest -q

test-firmware: setup
	$(PY) -m pytest -q tests/firmware tests/test_firmware_on_micropython.py tests/test_firmware_checks.py

# .mpy files for the device, one per firmware module, into build/firmware.
firmware: setup
	$(PY) tools/build_firmware.py --out build/firmware

check-firmware: setup
	$(PY) tools/build_firmware.py --out build/firmware --check

# The cloud with embedded defaults: SQLite file, local Daraja stand-in, no accounts.
cloud: setup
	$(PY) -m cloud serve

bench: setup
	$(PY) bench/firmware_bench.py

clean:
	rm -rf build .pytest_cache
