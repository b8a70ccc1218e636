#!/usr/bin/env bash
# Runs a built image on this machine and checks it answers:
#   deploy/images/smoke.sh code  IMAGE FACES_DIR     materializes the data assets on UTKFace-named faces
#   deploy/images/smoke.sh serve IMAGE EXPORT_DIR PHOTO   serves the export, asks /health and /predict
# Containers run through `buildah run --isolation chroot` (PODMAN_FLAGS' storage), which needs no
# user namespaces, cgroups or overlayfs; on a machine where `podman run` works it does the same.
set -euo pipefail
read -r -a BUILDAH <<< "buildah ${PODMAN_FLAGS:---storage-driver vfs}"
kind=$1 image=$2 mount=$(realpath "$3")
container=$("${BUILDAH[@]}" from "$image")
server=
cleanup() { [[ -z $server ]] || kill -- "$server" 2>/dev/null || true; "${BUILDAH[@]}" rm "$container" >/dev/null; }
trap cleanup EXIT
run() { "${BUILDAH[@]}" run --isolation chroot --network host -v "$mount:/mnt/in" "$@"; }

case $kind in
    code)
        work=$(mktemp -d) && chmod 777 "$work"
        run -v "$work:/data" -e AGE_ASSETS_DATASET=utkface:/mnt/in -e AGE_ASSETS_BACKBONES=mobilenet_v3_small \
            "$container" -- dagster asset materialize -m age_assets --select raw_dataset,image_arrays,augmented_train \
            2>&1 | grep -E "STEP_SUCCESS|STEP_FAILURE|RUN_SUCCESS|RUN_FAILURE|Error"
        ls "$work"/artifacts/augmented_train/*/ >/dev/null && echo "code: artifacts written under /data"
        rm -rf "$work"
        ;;
    serve)
        port=${PORT:-18000}
        setsid "${BUILDAH[@]}" run --isolation chroot --network host -v "$mount:/mnt/in" "$container" -- \
            age-assets serve --model /mnt/in --host 127.0.0.1 --port "$port" > "${SERVER_LOG:-/dev/null}" 2>&1 &
        server=-$!
        for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/health" && break; sleep 1; done
        echo
        curl -sf -F "image=@$4;type=image/jpeg" "http://127.0.0.1:$port/predict"
        echo
        ;;
    *) echo "use: smoke.sh code|serve IMAGE DIR [PHOTO]" >&2; exit 2 ;;
esac
