fn main() -> std::process::ExitCode {
    // Before the runtime starts any thread: arenas made before the limit would stay.
    signaldb_compactor::alloc::configure();
    signaldb_compactor::cli::main()
}
