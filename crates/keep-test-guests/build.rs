//! Passes on where libsqlite3-sys keeps SQLite's amalgamation (`sqlite3.c`, `sqlite3.h`), so
//! that the SQLite guest is built from the crate's sources.

fn main() {
    if let Ok(dir) = std::env::var("DEP_SQLITE3_INCLUDE") {
        println!("cargo:rustc-env=KEEP_SQLITE_AMALGAMATION={dir}");
    }
}
