fn main() -> std::process::ExitCode {
    durafs_tools::run()
}
