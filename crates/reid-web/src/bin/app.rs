//! Entry point of the browser app's UI thread.

#[cfg(target_arch = "wasm32")]
fn main() {
    yew::Renderer::<reid_web::ui::App>::new().render();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("reid-web is a browser app: run `cargo xtask serve`");
}
