#!/usr/bin/env bash
# Builds the images from the repository without a container registry:
#   deploy/images/build.sh [code|gpu|serve|base]...   (default: code serve)
# base:  a Debian bookworm root file system made by mmdebstrap, imported as age-assets-base:bookworm
# code:  age-assets:<version>      the code location (Dagster code server, dagster-k8s, TensorFlow on CPU)
# gpu:   age-assets:<version>-gpu  the same with TensorFlow's and-cuda extra (CUDA as PyPI wheels)
# serve: age-assets-serve:<version> `age-assets serve` on a model mounted at /model
# Needs mmdebstrap and podman (Debian packages). PODMAN_FLAGS defaults to vfs storage, which works
# where overlayfs and user namespaces do not. PIP_INDEX_URL / PIP_EXTRA_INDEX_URL, if set (or in
# `pip config list`), are handed to pip inside the build, and so is PIP_CERT (or pip's `cert`), a CA
# bundle mounted for the build only, never copied into an image.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml")
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BASE_IMAGE=localhost/age-assets-base:$SUITE
read -r -a PODMAN <<< "podman ${PODMAN_FLAGS:---storage-driver vfs}"
BUILD_FLAGS=(--isolation chroot --network host --layers=false --format oci)

pip_setting() {  # an environment variable, else the same key from pip's configuration
    local value=${!1:-}
    [[ -n $value ]] || value=$(pip config get "global.$2" 2>/dev/null || true)
    # only indexes the build can reach: file:// paths of this machine are left out
    tr ' ' '\n' <<< "$value" | { grep -v '^file:' || true; } | paste -sd' ' -
}

build_base() {
    local tarball
    tarball=$(mktemp --suffix .tar)
    trap 'rm -f "$tarball"; trap - RETURN' RETURN
    mmdebstrap --variant=apt --include=python3,python3-venv,ca-certificates,libgomp1,passwd \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --aptopt='Apt::Install-Recommends "false"' \
        --customize-hook='chroot "$1" apt-get clean' --customize-hook='rm -rf "$1"/var/lib/apt/lists/*' \
        "$SUITE" "$tarball" "$MIRROR"
    "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' "$tarball" "$BASE_IMAGE"
}

build() {  # build NAME TAG BUILD-ARG...
    local name=$1 tag=$2
    shift 2
    local index extra
    index=$(pip_setting PIP_INDEX_URL index-url)
    extra=$(pip_setting PIP_EXTRA_INDEX_URL extra-index-url)
    local cert=${PIP_CERT:-$(pip config get global.cert 2>/dev/null || true)}
    local cert_flags=()
    [[ -z $cert ]] || cert_flags=(--volume "$cert:/run/pip-cert.pem:ro" --build-arg PIP_CERT=/run/pip-cert.pem)
    "${PODMAN[@]}" image exists "$BASE_IMAGE" || build_base
    "${PODMAN[@]}" build "${BUILD_FLAGS[@]}" -f "$ROOT/deploy/images/Containerfile" -t "$name:$tag" \
        --build-arg BASE="$BASE_IMAGE" --build-arg PIP_INDEX_URL="${index:-https://pypi.org/simple}" \
        --build-arg PIP_EXTRA_INDEX_URL="$extra" "${cert_flags[@]}" "$@" "$ROOT"
    "${PODMAN[@]}" image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$name:$tag"
}

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(code serve)
for target in "${targets[@]}"; do
    case $target in
        base) build_base ;;
        code) build localhost/age-assets "$VERSION" --target code --build-arg EXTRAS=k8s ;;
        gpu) build localhost/age-assets "$VERSION-gpu" --target code --build-arg EXTRAS=k8s --build-arg TF_EXTRA=and-cuda ;;
        serve) build localhost/age-assets-serve "$VERSION" --target serve --build-arg EXTRAS=serve ;;
        *) echo "unknown image '$target': use code, gpu, serve or base" >&2; exit 2 ;;
    esac
done
