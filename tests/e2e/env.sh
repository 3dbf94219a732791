# Sourced by tests/e2e/run and tests/e2e/demo (bash). Sets up the firmware build
# environment by itself (CI does not source ~/zephyrproject/env.sh), or explains
# what is missing.
#
# After sourcing: fw_env_ok=1 and the environment is ready, or fw_env_ok=0 and
# fw_env_reason says why (the caller prints "SKIPPED firmware tests: <reason>").
#
# Found (in this order of preference):
#   ZEPHYR_BASE          the env var, else ~/zephyrproject/zephyr
#   Python venv          <workspace>/.venv (workspace = the directory above ZEPHYR_BASE)
#   west                 on PATH after that
#   C toolchain          ZEPHYR_TOOLCHAIN_VARIANT as set; else the Zephyr SDK
#                        (ZEPHYR_SDK_INSTALL_DIR or ~/zephyr-sdk-*); else Debian's
#                        /usr/bin/aarch64-linux-gnu-gcc (cross-compile)
#   Rust                 chosen by the image's CMake, not here (RPMSG_RUSTC to override)
#   libclang (bindgen)   LIBCLANG_PATH as set, else the newest /usr/lib/llvm-*/lib
#   zephyr-lang-rust     a project of the west workspace, else <workspace>/modules/lang/rust
#                        (passed as EXTRA_ZEPHYR_MODULES, see FW_CMAKE_ARGS)
#   qemu-system-aarch64  on PATH

fw_env_ok=0
fw_env_reason=
FW_CMAKE_ARGS=

fw_skip() { fw_env_reason=$1; return 1; }

fw_setup_env() {
    ZEPHYR_BASE=${ZEPHYR_BASE:-$HOME/zephyrproject/zephyr}
    [ -f "$ZEPHYR_BASE/VERSION" ] || { fw_skip "no Zephyr tree at $ZEPHYR_BASE (set ZEPHYR_BASE or create ~/zephyrproject/zephyr)"; return 1; }
    export ZEPHYR_BASE
    local workspace
    workspace=$(cd "$ZEPHYR_BASE/.." && pwd)
    if [ -z "${VIRTUAL_ENV:-}" ] && [ -f "$workspace/.venv/bin/activate" ]; then
        # shellcheck disable=SC1091
        . "$workspace/.venv/bin/activate"
    fi
    command -v west >/dev/null 2>&1 || { fw_skip "west not found (pip install west in $workspace/.venv)"; return 1; }
    command -v cmake >/dev/null 2>&1 || { fw_skip "cmake not found"; return 1; }
    command -v ninja >/dev/null 2>&1 || { fw_skip "ninja not found"; return 1; }
    command -v dtc >/dev/null 2>&1 || { fw_skip "dtc (device-tree-compiler) not found"; return 1; }
    command -v qemu-system-aarch64 >/dev/null 2>&1 || { fw_skip "qemu-system-aarch64 not found (apt-get install qemu-system-arm)"; return 1; }
    command -v python3 >/dev/null 2>&1 || { fw_skip "python3 not found"; return 1; }

    # C toolchain.
    if [ -z "${ZEPHYR_TOOLCHAIN_VARIANT:-}" ]; then
        local sdk=${ZEPHYR_SDK_INSTALL_DIR:-}
        if [ -z "$sdk" ]; then
            for d in "$HOME"/zephyr-sdk-* /opt/zephyr-sdk-*; do
                [ -d "$d/aarch64-zephyr-elf" ] && sdk=$d
            done
        fi
        if [ -n "$sdk" ] && [ -d "$sdk/aarch64-zephyr-elf" ]; then
            export ZEPHYR_TOOLCHAIN_VARIANT=zephyr ZEPHYR_SDK_INSTALL_DIR=$sdk
        elif [ -x /usr/bin/aarch64-linux-gnu-gcc ]; then
            export ZEPHYR_TOOLCHAIN_VARIANT=cross-compile CROSS_COMPILE=/usr/bin/aarch64-linux-gnu-
        else
            fw_skip "no aarch64 C compiler (Zephyr SDK, or apt-get install gcc-aarch64-linux-gnu)"
            return 1
        fi
    fi

    # Rust: nothing to set. The image's CMake chooses the toolchain itself
    # (../../CMakeLists.txt, rpmsg_rust_toolchain; RPMSG_RUSTC overrides it).
    command -v cargo >/dev/null 2>&1 || [ -x /usr/bin/cargo ] || { fw_skip "cargo not found"; return 1; }

    # libclang for zephyr-lang-rust's bindgen.
    if [ -z "${LIBCLANG_PATH:-}" ]; then
        local lib
        for lib in $(ls -d /usr/lib/llvm-*/lib 2>/dev/null | sort -V); do
            [ -e "$lib/libclang.so" ] || [ -e "$lib/libclang.so.1" ] && LIBCLANG_PATH=$lib
        done
        [ -n "${LIBCLANG_PATH:-}" ] && export LIBCLANG_PATH
    fi

    # zephyr-lang-rust: from the west manifest, or next to Zephyr.
    if ! (cd "$workspace" && west list -f '{path}' 2>/dev/null) | grep -qx 'modules/lang/rust'; then
        if [ -f "$workspace/modules/lang/rust/zephyr/module.yml" ]; then
            FW_CMAKE_ARGS="-DEXTRA_ZEPHYR_MODULES=$workspace/modules/lang/rust"
        else
            fw_skip "zephyr-lang-rust not found (west update, or clone it to $workspace/modules/lang/rust)"
            return 1
        fi
    fi
    FW_WORKSPACE=$workspace
    fw_env_ok=1
    return 0
}
