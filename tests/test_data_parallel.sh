#!/usr/bin/env bash
# example_data_parallel — train-data-parallel under `mpirun -np 2` (one MPI_Allreduce of the gradient
# arena per step) must end with the parameters of one process trained on the union of the batches,
# to float tolerance.   usage: test_data_parallel.sh TRAIN_DATA_PARALLEL MPIEXEC
set -euo pipefail
program=$1
mpiexec=${2:-mpirun}
command -v "$mpiexec" >/dev/null || { echo "test_data_parallel: $mpiexec is not installed"; exit 77; }
work=$(mktemp -d /tmp/mora-test-dp-XXXXXX)
trap 'rm -rf "$work"' EXIT
# root in a container with 2 cores: allow root, allow 2 slots whatever the core count, shared memory
# transport without cross-memory attach (often not permitted in containers)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
flags=(--oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
"$mpiexec" "${flags[@]}" -np 2 "$program" --steps 20 --out "$work/two.bin"
"$mpiexec" "${flags[@]}" -np 1 "$program" --steps 20 --single --out "$work/one.bin"
"$program" --compare "$work/two.bin" "$work/one.bin"
echo "test_data_parallel: 2 processes with one all-reduce per step match 1 process on the union of the batches"
