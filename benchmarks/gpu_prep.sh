#!/usr/bin/env bash
# Here, before a GPU run: put what benchmarks/gpu.sh needs and the device machine cannot fetch
# into .gpudata/ (gitignored, sent with `carry: [".gpudata"]`): the MNIST files of the eRBP
# benchmark (from $SPIKEJAX_DATA, checked against their SHA256SUMS) and the commit the working
# tree is at (the copy sent to the device has no .git).
#
#   SPIKEJAX_DATA=../shared/data bash benchmarks/gpu_prep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
src=${SPIKEJAX_DATA:?set SPIKEJAX_DATA to the folder that holds mnist/}
rm -rf .gpudata
mkdir -p .gpudata/mnist
cp "$src"/mnist/*.gz "$src"/mnist/SHA256SUMS .gpudata/mnist/
# SHA256SUMS lists the decompressed IDX files (as spikejax.data checks them)
(cd .gpudata/mnist && while read -r sum name; do
    [[ "$(gunzip -c "$name.gz" | sha256sum | cut -d' ' -f1)" == "$sum" ]] || { echo "checksum mismatch: $name" >&2; exit 1; }
done < SHA256SUMS)
dirty=$(git status --porcelain --untracked-files=no)
echo "$(git rev-parse HEAD)${dirty:++dirty}" > .gpudata/COMMIT
du -sh .gpudata
echo "commit $(cat .gpudata/COMMIT); now: run(command='bash benchmarks/gpu.sh', carry=['.gpudata'])"
