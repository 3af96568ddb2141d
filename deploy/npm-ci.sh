# deploy/npm-ci.sh — sourced by deploy/setup.d/npm-*.sh: `npm_ci TAG DIR PACKAGE...` installs
# DIR/package.json's pinned dependencies into DIR/node_modules with `npm ci` (npm from Debian
# when missing), unless every PACKAGE is already there at its pinned version. Idempotent.
npm_ci() {
    tag=$1 dir=$2
    shift 2
    # pin PACKAGE: its exact version in package.json; have PACKAGE: the installed one
    pin() { sed -n "s|.*\"$1\": *\"\([^\"]*\)\".*|\1|p" "$dir/package.json" | head -1; }
    have() { sed -n 's|^ *"version": *"\([^"]*\)".*|\1|p' "$dir/node_modules/$1/package.json" 2>/dev/null | head -1; }
    missing=""
    for p in "$@"; do [ -n "$(have "$p")" ] && [ "$(have "$p")" = "$(pin "$p")" ] || missing="$missing $p"; done
    if [ -z "$missing" ]; then
        echo "$tag: $* already installed"
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null ||
            { echo "$tag: npm not found and apt-get install npm failed"; return 1; }
    fi
    (cd "$dir" && { npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent; })
    for p in "$@"; do
        [ "$(have "$p")" = "$(pin "$p")" ] || { echo "$tag: install finished but $p $(pin "$p") is missing"; return 1; }
    done
    echo "$tag: installed$missing"
}
