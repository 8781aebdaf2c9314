//! A plain WASI command component (world `wasi:cli/command`), which is neither an
//! orchestration nor an activity component: the host must refuse it clearly.

fn main() {
    println!("hello from a component of the wrong world");
}
