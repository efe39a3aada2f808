fn main() {
    std::process::exit(wharf_cli::run());
}
