//! Plain exports for `airssys-wasm call --invoke` (see `wit/world.wit`).
wit_bindgen::generate!({ path: "wit", world: "invoke-probe" });

struct Probe;

impl Guest for Probe {
    fn add(a: u32, b: u32) -> u32 {
        a.wrapping_add(b)
    }
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
    fn flip(p: Point) -> Point {
        Point { x: p.y, y: p.x }
    }
    fn echo_bytes(bytes: Vec<u8>) -> Vec<u8> {
        bytes
    }
    fn spin() {
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

impl exports::example::invoke_probe::math::Guest for Probe {
    fn divide(a: f64, b: f64) -> Result<f64, String> {
        if b == 0.0 {
            Err("division by zero".into())
        } else {
            Ok(a / b)
        }
    }
}

export!(Probe);
