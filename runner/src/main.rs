/// mimalloc rather than glibc's malloc: the engine allocates and frees many
/// small JSON values per step from several threads, and with glibc that
/// cost a third of the throughput at concurrency 64 (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(soar_runner::cli::main_entry());
}
