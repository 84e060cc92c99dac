fn main() -> std::process::ExitCode {
    cortexfit::kernels::memory::retain_freed_memory();
    cortexfit::cli::main()
}
