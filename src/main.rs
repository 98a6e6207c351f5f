fn main() -> std::process::ExitCode {
    // Before the runtime starts any thread: the allocator's arena count is fixed at first use.
    signaldb_compactor::alloc::configure();
    signaldb_compactor::cli::main()
}
