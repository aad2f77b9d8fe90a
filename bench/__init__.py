"""The benchmarks, importable as a package (run them from the repository root as modules,
``python -m bench.cpu.train_step``): ``common`` holds the one timing helper, the one table
helper and the machine header; ``cpu`` the CPU benchmarks; ``gpu`` the GPU benchmark and the
stages of the GPU check (bench/gpu_check.sh)."""
