#!/usr/bin/env bash
# The out-of-tree flow of an engine that embeds anychip, end to end:
#   cmake --install of this build into a fresh prefix; every installed header compiles on
#   its own (no internal header leaks); examples/embed_c and examples/embed_cpp configure
#   with find_package(anychip CONFIG) in fresh build directories, build, and pass on cpu and
#   sim:npu-ue8m0; the C example builds once more with pkg-config alone and passes; the C
#   program needs libanychip and nothing else of ours; the installed `anychip` runs.
# usage: embed_test.sh BUILD_DIR SOURCE_DIR [CMAKE]
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
cmake=${3:-cmake}
devices=(cpu sim:npu-ue8m0)

work=$(mktemp -d "${TMPDIR:-/tmp}/anychip-embed.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
export ANYCHIP_CACHE_DIR=$work/kernel-cache
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

step() { echo "== $*"; }

step "install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >/dev/null
pcdir=$(dirname "$(find "$prefix" -name anychip.pc)")
libdir=$(dirname "$pcdir")
for f in "$libdir"/libanychip.so "$prefix"/bin/anychip "$prefix"/include/anychip/anychip.h \
         "$prefix"/include/anychip/anychip.hpp "$libdir"/cmake/anychip/anychipConfig.cmake; do
  [ -e "$f" ] || { echo "not installed: $f" >&2; exit 1; }
done

step "each installed header compiles alone, against the installed headers only"
cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$prefix/include" -x c - <<<'#include <anychip/anychip.h>'
c++ -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$prefix/include" -x c++ - <<<'#include <anychip/anychip.h>'
for h in "$prefix"/include/anychip/*.hpp; do
  c++ -std=c++20 -Wall -Wextra -Werror -fsyntax-only -I"$prefix/include" -x c++ - <<<"#include <anychip/${h##*/}>"
done

for lang in c cpp; do
  step "examples/embed_$lang: configure and build against the package"
  "$cmake" -S "$src/examples/embed_$lang" -B "$work/embed_$lang" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" >"$work/configure_$lang.log" || { cat "$work/configure_$lang.log"; exit 1; }
  "$cmake" --build "$work/embed_$lang" >"$work/build_$lang.log" || { cat "$work/build_$lang.log"; exit 1; }
  step "embed_$lang ${devices[*]}"
  "$work/embed_$lang/embed_$lang" "${devices[@]}"
done

step "a C program needs libanychip alone"
needed=$(readelf -d "$work/embed_c/embed_c" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
echo "embed_c needs: $needed"
case " $needed " in *" libanychip.so.1 "*) ;; *) echo "embed_c does not link libanychip.so.1" >&2; exit 1 ;; esac
for lib in $needed; do
  case $lib in libanychip.so.1 | libc.so.* | libm.so.* | ld-linux*) ;;
    *) echo "embed_c links $lib directly; it should need libanychip alone" >&2; exit 1 ;;
  esac
done

step "examples/embed_c with pkg-config alone"
flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs anychip)
echo "pkg-config --cflags --libs anychip: $flags"
# shellcheck disable=SC2086
cc -std=c99 -Wall -Wextra -pedantic -Werror -o "$work/embed_c_pkgconfig" "$src/examples/embed_c/main.c" $flags
LD_LIBRARY_PATH=$libdir "$work/embed_c_pkgconfig" "${devices[@]}"

step "the installed anychip command"
"$prefix/bin/anychip" devices | grep -q '^cpu'
echo "embed test: all passed"
