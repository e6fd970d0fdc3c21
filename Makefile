# The two commands of the README. Both create .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench clean sample-data

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,deep,tf]"
	$(BIN)/pipeline models fetch MTCNN || echo "MTCNN weights not fetched (no PyPI?): the face stage uses Haar"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pipeline demo --dir demo-output

test: $(STAMP)
	$(MAKE) -s sample-data || echo "OpenCV sample photo/video not fetched (not Debian/Ubuntu?): the real-photo face tests skip"
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow" --durations=15

# the real-SLURM cluster tests (root and Debian's slurm-wlm + munge; .ci/run installs them)
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .

# OpenCV's sample photo and video (face-stage tests and benchmark), from Debian's opencv-doc, unpacked only
SAMPLES := .cache/opencv-samples
sample-data:
	mkdir -p $(SAMPLES) .cache/deb
	cd .cache/deb && (ls opencv-doc_*.deb >/dev/null 2>&1 || apt-get download opencv-doc)
	dpkg-deb --fsys-tarfile .cache/deb/opencv-doc_*.deb | tar -x -C $(SAMPLES) --strip-components=7 \
	  ./usr/share/doc/opencv-doc/examples/data/messi5.jpg ./usr/share/doc/opencv-doc/examples/data/Megamind.avi

bench: $(STAMP)
	$(BIN)/python benchmarks/extract_bench.py

clean:
	rm -rf demo-output .pytest_cache
