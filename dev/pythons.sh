# The Pythons gomp supports (the README's claim, the classifiers), and how
# to find each one here; sourced by .ci/run and the wheel scripts.
# shellcheck shell=bash
PYTHONS=(3.9 3.10 3.11 3.12 3.13)

# an interpreter of version $1 that runs (a pyenv shim on PATH may not)
find_python() {
    local v=$1 p
    for p in "$(pyenv root 2>/dev/null)"/versions/"$v".*/bin/python"$v" "python$v"; do
        if "$p" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$v'.split('.')))" \
                >/dev/null 2>&1; then
            echo "$p"
            return 0
        fi
    done
    return 1
}
