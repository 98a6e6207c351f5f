/// mimalloc returns freed memory to the OS far more readily than glibc's per-thread arenas, which
/// keeps the daemon's resident size close to its working set (measured in docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    signaldb_compactor::cli::main()
}
