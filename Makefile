# Thin wrapper around Meson + Ninja.
#   make            build into build/
#   make test       install missing packages, build, run the whole suite
#   make test-asan  the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make install    install into PREFIX (default /usr/local), staged under DESTDIR
#                   when set: make install DESTDIR=/tmp/stage PREFIX=/usr
#   make deb        build the Debian packages, lintian them, run the packaged daemon
#                   (scripts/deb-check.sh; the .deb files land in build/deb/)
#   make run        start the founding system (./start_servers.sh)
#   make bench      run the benchmarks (bench/)
#   make fuzz       build the libFuzzer targets and run each briefly

BUILD ?= build
MESON_OPTS ?=
TEST_ARGS ?=
PREFIX ?=
DESTDIR ?=

.PHONY: all deps install deb test test-asan run bench fuzz format clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	@scripts/install-deps.sh --build --check >/dev/null 2>&1 || scripts/install-deps.sh --build
	meson setup $(BUILD) $(MESON_OPTS)

deps:
	scripts/install-deps.sh

# PREFIX changes the build folder's prefix (the units and gpucoord.pc name it);
# DESTDIR only stages the files.
install: all
	$(if $(PREFIX),meson configure $(BUILD) -Dprefix=$(abspath $(PREFIX)) && ninja -C $(BUILD))
	meson install -C $(BUILD) --no-rebuild $(if $(DESTDIR),--destdir $(abspath $(DESTDIR)))

deb: all
	scripts/deb-check.sh $(BUILD)/deb

test: deps all
	meson test -C $(BUILD) --print-errorlogs $(TEST_ARGS)

test-asan:
	$(MAKE) BUILD=build-asan MESON_OPTS="-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug" test

run: all
	./start_servers.sh

bench: all
	scripts/bench.sh

fuzz:
	scripts/fuzz.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz
