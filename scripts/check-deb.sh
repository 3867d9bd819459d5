#!/usr/bin/env bash
# `cpack -G DEB` on the already built tree (a ctest, deb_package_test):
# builds the Debian package into a temporary directory, lists its files and
# checks the library (with its SONAME link), the headers, the CMake and
# pkg-config files and the CLI are in it, under /usr.
#   scripts/check-deb.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/callvault-deb-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$build" && cpack -G DEB -B "$tmp" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; exit 1; }
deb=$(ls "$tmp"/*.deb)
echo "deb: $(basename "$deb") ($(stat -c %s "$deb") bytes)"
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Depends\):/deb: \1:/p'
files=$(dpkg-deb --contents "$deb" | awk '{print $6}')
echo "$files" | sed 's/^/deb: /'
n=0
for want in '^\./usr/include/callvault/store\.h$' '^\./usr/include/callvault/version\.h$' \
            '^\./usr/lib/.*libcallvault\.a$' '^\./usr/lib/.*libcallvault\.so\.[0-9.]*$' \
            '^\./usr/lib/.*cmake/callvault/callvaultConfig\.cmake$' \
            '^\./usr/lib/.*cmake/callvault/callvaultTargets\.cmake$' \
            '^\./usr/lib/.*pkgconfig/callvault\.pc$' '^\./usr/bin/callvault$'; do
  grep -qE "$want" <<<"$files" || { echo "deb: missing $want"; exit 1; }
  n=$((n + 1))
done
echo "deb: $n expected files present, 0 missing"
