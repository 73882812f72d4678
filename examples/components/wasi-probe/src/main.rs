//! A WASI command for tests and the demo. Usage: `wasi-probe COMMAND [ARGS]`:
//!   args               print the arguments, one per line
//!   env NAME           print $NAME (exit 3 when unset)
//!   read PATH          print the file (exit 2 on error, the error on stderr)
//!   write PATH TEXT    write TEXT to PATH (exit 2 on error)
//!   ls PATH            list a directory
//!   time               print wall-clock seconds and 8 random bytes
//!   exit N             exit with code N
//!   panic              panic (a trap)
//!   loop               spin forever
//!   alloc MIB          allocate MIB mebibytes
//!   connect ADDR       TCP-connect to ADDR, send "ping", print the reply (exit 4 when refused)
use std::io::Read;

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("wasi-probe: {what}: {e}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(1).as_str() {
        "args" => args.iter().for_each(|a| println!("{a}")),
        "env" => match std::env::var(arg(2)) {
            Ok(v) => println!("{v}"),
            Err(_) => {
                eprintln!("wasi-probe: {} is not set", arg(2));
                std::process::exit(3)
            }
        },
        "read" => match std::fs::read_to_string(arg(2)) {
            Ok(s) => print!("{s}"),
            Err(e) => fail(&format!("read {}", arg(2)), e),
        },
        "write" => {
            if let Err(e) = std::fs::write(arg(2), arg(3)) {
                fail(&format!("write {}", arg(2)), e)
            }
        }
        "ls" => match std::fs::read_dir(arg(2)) {
            Ok(rd) => {
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                names.iter().for_each(|n| println!("{n}"));
            }
            Err(e) => fail(&format!("ls {}", arg(2)), e),
        },
        "time" => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let mut buf = [0u8; 8];
            let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
            println!("{secs}");
        }
        "exit" => std::process::exit(arg(2).parse().unwrap_or(1)),
        "panic" => panic!("wasi-probe was asked to panic"),
        "loop" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "alloc" => {
            let mib: usize = arg(2).parse().unwrap_or(1);
            let v: Vec<Vec<u8>> = (0..mib).map(|_| vec![1u8; 1 << 20]).collect();
            println!("allocated {} MiB", v.len());
        }
        "connect" => {
            use std::io::Write;
            match std::net::TcpStream::connect(arg(2)) {
                Ok(mut s) => {
                    let _ = s.write_all(b"ping");
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    let mut reply = String::new();
                    let _ = s.read_to_string(&mut reply);
                    println!("{reply}");
                }
                Err(e) => {
                    eprintln!("wasi-probe: connect {}: {e}", arg(2));
                    std::process::exit(4)
                }
            }
        }
        other => {
            eprintln!("wasi-probe: unknown command {other:?}");
            std::process::exit(64)
        }
    }
}
