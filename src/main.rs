fn main() -> std::process::ExitCode {
    signaldb_compactor::cli::main()
}
