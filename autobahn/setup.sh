#!/usr/bin/env bash
# Install the Autobahn testsuite's `wstest` (Python 2.7 code) under PyPy 2.7.
#
# Everything lands in a cache folder outside the repository:
#   ${WSSERVER_AUTOBAHN_HOME:-$HOME/.cache/wsserver-autobahn}
# and the entry point is the generated wrapper `$WSSERVER_AUTOBAHN_HOME/wstest`.
#
# PyPy 2.7, libffi7 and OpenSSL 1.1 come from Debian bullseye. They are fetched
# through a private apt configuration (own sources file, lists, cache, empty
# dpkg status) and unpacked with `dpkg -x`, so the system's apt state and
# installed packages are never touched. Python packages come from the same
# package index the machine's pip is configured for.
#
# Idempotent: once a run has finished and its smoke test passed, a stamp file
# is written and later runs exit immediately. Delete the cache folder (or the
# stamp) to force a reinstall.
#
# Environment:
#   WSSERVER_AUTOBAHN_HOME    cache folder (default: ~/.cache/wsserver-autobahn)
#   WSSERVER_AUTOBAHN_MIRROR  Debian mirror URI for bullseye (default: the
#                             machine's own mirror from its apt sources)
# Needs: apt-get, dpkg, a C compiler (gcc), python3 with pip.
set -euo pipefail

AB_HOME="${WSSERVER_AUTOBAHN_HOME:-$HOME/.cache/wsserver-autobahn}"
# Bump when the recipe changes so existing caches are rebuilt.
RECIPE="wsserver-autobahn recipe 1: pypy bullseye, autobahntestsuite==25.10.1"
STAMP="$AB_HOME/.installed"
WRAPPER="$AB_HOME/wstest"

PREFIX="$AB_HOME/prefix"        # unpacked .debs (PyPy, libffi7, OpenSSL 1.1)
SITE="$AB_HOME/site"            # --target folder for all Python 2 packages
APT_DIR="$AB_HOME/apt"          # private apt sources, lists and cache
DEBS="$AB_HOME/debs"            # downloaded .deb files
WHEELS="$AB_HOME/bootstrap"     # pip / setuptools / wheel wheels for PyPy
LOGS="$AB_HOME/logs"

DEB_PACKAGES=(pypy pypy-lib pypy-dev libffi7 libssl1.1 libssl-dev=1.1.1w-0+deb11u1)
BOOTSTRAP=(pip==20.3.4 setuptools==44.1.1 wheel==0.37.1)
# Twisted's setup.py imports incremental, so these go in first.
BASE_PACKAGES=(incremental==16.10.1 six==1.16.0 constantly==15.1.0 attrs==19.3.0
    idna==2.10 enum34==1.1.10 ipaddress==1.0.23)
SUITE_PACKAGES=(autobahntestsuite==25.10.1 autobahn==0.10.9 Twisted==19.10.0
    zope.interface==4.6.0 txaio==2.1.0 Automat==0.8.0 hyperlink==19.0.0
    PyHamcrest==1.10.1 jinja2==2.11.3 markupsafe==1.1.1 unittest2==1.1.0
    traceback2==1.4.0 linecache2==1.0.0 cryptography==3.3.2 pyOpenSSL==19.1.0)

say() { printf 'autobahn-setup: %s\n' "$*"; }
die() { printf 'autobahn-setup: error: %s\n' "$*" >&2; exit 1; }

# run_logged NAME CMD...: run CMD with its output in $LOGS/NAME.log; on failure
# show the end of that log and stop.
run_logged() {
    local name="$1"; shift
    local log="$LOGS/$name.log"
    if ! "$@" >"$log" 2>&1; then
        printf 'autobahn-setup: step "%s" failed; last lines of %s:\n' "$name" "$log" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}

is_installed() {
    [[ -f "$STAMP" && -x "$WRAPPER" ]] && [[ "$(cat "$STAMP")" == "$RECIPE" ]]
}

# The first mirror URI of the machine's own Debian sources (not the security
# archive), so the private bullseye list uses whatever host this machine uses.
machine_mirror() {
    local uri=""
    if [[ -n "${WSSERVER_AUTOBAHN_MIRROR:-}" ]]; then
        uri="$WSSERVER_AUTOBAHN_MIRROR"
    elif [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        uri="$(awk 'tolower($1) == "uris:" && $2 !~ /-security/ { print $2; exit }' \
            /etc/apt/sources.list.d/debian.sources)"
    elif [[ -f /etc/apt/sources.list ]]; then
        # deb [options] URI suite components...
        uri="$(sed -e 's/\[[^]]*\]//' /etc/apt/sources.list \
            | awk '$1 == "deb" && $2 !~ /-security/ { print $2; exit }')"
    fi
    [[ -n "$uri" ]] || die "cannot find the machine's Debian mirror; set WSSERVER_AUTOBAHN_MIRROR"
    printf '%s\n' "${uri%/}"
}

multiarch_triplet() {
    case "$(dpkg --print-architecture)" in
        amd64) echo x86_64-linux-gnu ;;
        arm64) echo aarch64-linux-gnu ;;
        *) die "unsupported architecture $(dpkg --print-architecture)" ;;
    esac
}

# apt-get with a fully private configuration: only our bullseye source, our
# own lists/cache, no dpkg status and no pinning from the system.
private_apt() {
    apt-get \
        -o Dir::Etc::sourcelist="$APT_DIR/bullseye.sources" \
        -o Dir::Etc::sourceparts=/dev/null \
        -o Dir::Etc::preferences=/dev/null \
        -o Dir::Etc::preferencesparts=/dev/null \
        -o Dir::State::Lists="$APT_DIR/lists" \
        -o Dir::State::status=/dev/null \
        -o Dir::Cache="$APT_DIR/cache" \
        -o Dir::Cache::pkgcache= \
        -o Dir::Cache::srcpkgcache= \
        -o APT::Sandbox::User="$(id -un)" \
        "$@"
}

fetch_debs() {
    local mirror
    mirror="$(machine_mirror)"
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$DEBS"
    cat >"$APT_DIR/bullseye.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    say "[1/5] apt: bullseye package lists from $mirror"
    run_logged apt-update private_apt --error-on=any update
    say "[2/5] apt: downloading and unpacking ${DEB_PACKAGES[*]}"
    rm -f "$DEBS"/*.deb
    (cd "$DEBS" && run_logged apt-download private_apt download "${DEB_PACKAGES[@]}")
    local deb
    for deb in "$DEBS"/*.deb; do
        dpkg -x "$deb" "$PREFIX"
    done
}

# Environment for running PyPy out of the unpacked prefix.
pypy_env() {
    env -u PYTHONHOME \
        LD_LIBRARY_PATH="$PREFIX/usr/lib/$TRIPLET" \
        PYTHONPATH="$SITE" \
        PYTHONWARNINGS=ignore \
        PIP_CACHE_DIR="$AB_HOME/pip-cache" \
        PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$@"
}

bootstrap_pip() {
    say "[3/5] pip: bootstrapping ${BOOTSTRAP[*]} for PyPy"
    mkdir -p "$WHEELS" "$SITE"
    run_logged pip-download python3 -m pip download --no-deps --only-binary=:all: \
        --python-version 2.7 --implementation py --platform any \
        --dest "$WHEELS" "${BOOTSTRAP[@]}"
    local pip_whl
    pip_whl="$(ls "$WHEELS"/pip-20.3.4-*.whl)"
    # pip runs straight from its wheel; --no-compile because PyPy's .pyc layout
    # trips an assertion in this pip's byte-compile step.
    run_logged pip-bootstrap pypy_env "$PYPY" "$pip_whl/pip" install --no-index \
        --no-compile --target "$SITE" "$WHEELS"/*.whl
}

install_suite() {
    say "[4/5] pip: installing the testsuite and its dependencies (builds C extensions)"
    local pip_install=("$PYPY" -m pip install --no-deps --no-build-isolation
        --no-compile --target "$SITE")
    run_logged pip-base pypy_env "${pip_install[@]}" "${BASE_PACKAGES[@]}"
    # cryptography 3.3 builds against OpenSSL 1.1, taken from the unpacked prefix.
    run_logged pip-suite pypy_env \
        CFLAGS="-I$PREFIX/usr/include -I$PREFIX/usr/include/$TRIPLET" \
        LDFLAGS="-L$PREFIX/usr/lib/$TRIPLET" \
        "${pip_install[@]}" "${SUITE_PACKAGES[@]}"
    # zope.interface relies on a namespace .pth file, which is not read for
    # PYTHONPATH entries; a plain package __init__ does the job.
    : >"$SITE/zope/__init__.py"
}

write_wrapper() {
    cat >"$WRAPPER.tmp" <<EOF
#!/bin/sh
# Generated by wsserver's autobahn/setup.sh: run the Autobahn testsuite's wstest
# under the PyPy 2.7 unpacked in $AB_HOME.
unset PYTHONHOME
LD_LIBRARY_PATH="$PREFIX/usr/lib/$TRIPLET\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
PYTHONPATH="$SITE"
PYTHONWARNINGS=ignore
export LD_LIBRARY_PATH PYTHONPATH PYTHONWARNINGS
exec "$PYPY" -m autobahntestsuite.wstest "\$@"
EOF
    chmod +x "$WRAPPER.tmp"
    mv "$WRAPPER.tmp" "$WRAPPER"
}

smoke_test() {
    say "[5/5] smoke test"
    run_logged smoke-version "$WRAPPER" --autobahnversion
    grep -q "25.10.1" "$LOGS/smoke-version.log" \
        || die "wstest did not report version 25.10.1 (see $LOGS/smoke-version.log)"
    run_logged smoke-imports pypy_env "$PYPY" -c \
        'import autobahntestsuite.fuzzing, twisted.internet.reactor, OpenSSL.SSL, zope.interface'
}

main() {
    if is_installed; then
        say "wstest already installed: $WRAPPER"
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get is required"
    command -v dpkg >/dev/null || die "dpkg is required"
    command -v python3 >/dev/null || die "python3 (with pip) is required"
    command -v cc >/dev/null || command -v gcc >/dev/null \
        || die "a C compiler is required (apt-get install build-essential)"

    mkdir -p "$AB_HOME"
    # Serialise concurrent runs; the second one then finds the stamp.
    if command -v flock >/dev/null; then
        exec 9>"$AB_HOME/.lock"
        flock 9
        if is_installed; then
            say "wstest already installed: $WRAPPER"
            return 0
        fi
    fi

    SECONDS=0
    say "installing wstest into $AB_HOME"
    # Start from a clean slate: a half-finished earlier attempt is discarded.
    rm -rf "$PREFIX" "$SITE" "$LOGS" "$STAMP" "$WRAPPER"
    mkdir -p "$PREFIX" "$SITE" "$LOGS"

    TRIPLET="$(multiarch_triplet)"
    PYPY="$PREFIX/usr/bin/pypy"   # relative symlink into usr/lib/pypy/bin

    fetch_debs
    [[ -x "$PYPY" ]] || die "pypy was not unpacked to $PYPY"
    bootstrap_pip
    install_suite
    write_wrapper
    smoke_test

    printf '%s\n' "$RECIPE" >"$STAMP"
    say "done in ${SECONDS}s; wstest: $WRAPPER"
}

main "$@"
