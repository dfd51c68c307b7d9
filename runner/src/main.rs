fn main() {
    std::process::exit(soar_runner::cli::main_entry());
}
