fn main() -> std::process::ExitCode {
    cortexfit::cli::main()
}
