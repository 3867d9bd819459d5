#!/usr/bin/env bash
# The installed package as a consumer sees it (issue 13 item 1). A ctest
# (install_consume_test) runs it on the already built tree:
#   scripts/check-install.sh SOURCE_DIR BUILD_DIR
# 1. `cmake --install BUILD_DIR --prefix TMP` (nothing is rebuilt);
# 2. every installed public header compiles alone with the installed include
#    directory only, under -Wall -Wextra -Wpedantic -Werror;
# 3. examples/consumer (the README example) is configured with
#    find_package(callvault CONFIG), built against the shared and the static
#    library with the same flags, and both run and print what the README says;
# 4. the same program built with `pkg-config --cflags --libs callvault`, and
#    against libcallvault.a without the CRC32C wrap (decision 0075);
# 5. the installed CLI runs;
# 6. examples/subproject (add_subdirectory) configures with GoogleTest,
#    Google Benchmark, CLI11 and fmt disabled, defines no test target and no
#    -Werror. Prints "install: N checks, 0 failed".
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/callvault-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
checks=0
fail() { echo "install: FAILED: $*" >&2; echo "install: $checks checks, 1 failed"; exit 1; }
ok() { checks=$((checks + 1)); echo "install: ok: $*"; }
flags="-Wall -Wextra -Wpedantic -Werror"
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || fail "cmake --install"
libdir=$(cd "$prefix" && ls -d lib*/ | head -1); libdir=${libdir%/}
for f in include/callvault/store.h include/callvault/status.h include/callvault/version.h \
         "$libdir/libcallvault.a" "$libdir/cmake/callvault/callvaultConfig.cmake" \
         "$libdir/cmake/callvault/Findsodium.cmake" "$libdir/pkgconfig/callvault.pc" bin/callvault; do
  [ -e "$prefix/$f" ] || fail "not installed: $f"
done
so=$(readlink "$prefix/$libdir/libcallvault.so") || fail "no libcallvault.so symlink"
soname=$(objdump -p "$prefix/$libdir/libcallvault.so" | awk '/SONAME/ {print $2}')
[ -n "$soname" ] && [ -e "$prefix/$libdir/$soname" ] || fail "SONAME '$soname' not installed"
ok "installed: headers, libcallvault.a, $so (SONAME $soname), CMake and pkg-config files, CLI"

cxx=${CXX:-c++}
for h in "$prefix"/include/callvault/*.h; do
  echo "#include \"callvault/$(basename "$h")\"" |
    $cxx -std=c++20 $flags -I"$prefix/include" -fsyntax-only -x c++ - ||
    fail "header $(basename "$h") does not compile alone with $flags"
done
ok "$(ls "$prefix"/include/callvault/*.h | wc -l) public headers compile alone with $flags"

cmake -S "$src/examples/consumer" -B "$tmp/consumer" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_FLAGS="$flags" "${launcher[@]}" \
  >"$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; fail "find_package(callvault)"; }
cmake --build "$tmp/consumer" -j2 >>"$tmp/consumer.log" 2>&1 ||
  { cat "$tmp/consumer.log"; fail "building examples/consumer"; }
ok "examples/consumer configured with find_package(callvault CONFIG) and built with $flags"

expect_readme() {  # program, label
  local out dir=$tmp/run-$2
  mkdir -p "$dir"
  out=$("$1" "$dir") || fail "$2 exited $?"
  for line in "callvault $(sed -n 's/^#define CALLVAULT_VERSION_STRING "\(.*\)"/\1/p' \
                 "$prefix/include/callvault/version.h")" c-0001 "receipt 1: verified" \
              "tenant_purged: tenant purged"; do
    grep -qxF "$line" <<<"$out" || fail "$2 did not print '$line': $out"
  done
}
expect_readme "$tmp/consumer/readme_example" shared
# ldd's output to a file first: `ldd | grep -q` under pipefail fails when
# grep exits at its match before ldd finished writing (SIGPIPE), which a
# loaded machine made happen once.
ldd "$tmp/consumer/readme_example" >"$tmp/ldd-shared.txt"
grep -qF "$prefix/$libdir/$soname" "$tmp/ldd-shared.txt" ||
  fail "readme_example does not run with the installed $soname: $(cat "$tmp/ldd-shared.txt")"
ok "readme_example (callvault::callvault, the installed $soname) prints the README's output"
expect_readme "$tmp/consumer/readme_example_static" static
ldd "$tmp/consumer/readme_example_static" >"$tmp/ldd-static.txt" || true  # "not a dynamic executable" is fine
if grep -q libcallvault "$tmp/ldd-static.txt"; then
  fail "readme_example_static links libcallvault.so"
fi
ok "readme_example_static (callvault::callvault_static) prints the README's output"

export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
[ "$(pkg-config --modversion callvault)" = "$(sed -n 's/^#define CALLVAULT_VERSION_STRING "\(.*\)"/\1/p' \
    "$prefix/include/callvault/version.h")" ] || fail "pkg-config --modversion"
# shellcheck disable=SC2046
$cxx -std=c++20 $flags "$src/examples/consumer/main.cc" -o "$tmp/pc_example" \
  $(pkg-config --cflags --libs callvault) -Wl,-rpath,"$prefix/$libdir" ||
  fail "building with pkg-config --cflags --libs callvault"
expect_readme "$tmp/pc_example" pkgconfig
ok "pkg-config --cflags --libs callvault builds and runs the example"
# The static library linked by hand, without the CRC32C wrap that
# callvault::callvault_static's link options carry (pkg-config's
# Libs.private cannot): the engine's own CRC32C (engine/crc32c.cc) must not
# pull the wrap's object and its __real_ reference in (decision 0075).
# shellcheck disable=SC2046
$cxx -std=c++20 $flags "$src/examples/consumer/main.cc" -o "$tmp/pc_static_example" \
  -I"$prefix/include" "$prefix/$libdir/libcallvault.a" \
  $(pkg-config --libs rocksdb libsodium libcrypto libzstd) -lflatbuffers -pthread ||
  fail "linking libcallvault.a without the CRC32C wrap"
expect_readme "$tmp/pc_static_example" static-nowrap
ok "libcallvault.a linked without the CRC32C wrap builds and runs the example"

"$prefix/bin/callvault" --help >/dev/null || fail "installed CLI"
ok "installed CLI runs"

cmake -S "$src/examples/subproject" -B "$tmp/sub" -DCALLVAULT_SOURCE_DIR="$src" \
  -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_CLI11=ON -DCMAKE_DISABLE_FIND_PACKAGE_fmt=ON \
  >"$tmp/sub.log" 2>&1 || { cat "$tmp/sub.log"; fail "add_subdirectory without test/bench/CLI packages"; }
targets=$(cmake --build "$tmp/sub" --target help)
for t in callvault readme_example; do
  grep -q "\.\.\. $t\$" <<<"$targets" || fail "subproject: no target $t"
done
for t in store_test callvault_bin callvault_harness callvault_cli; do
  if grep -q "\.\.\. $t\$" <<<"$targets"; then fail "subproject defines $t"; fi
done
if grep -rq --include=flags.make -e "-Werror" "$tmp/sub/callvault"; then fail "subproject builds with -Werror"; fi
ok "add_subdirectory: library only, no GTest/benchmark/CLI11/fmt, no -Werror"

echo "install: $checks checks, 0 failed"
