//! RPMsg over IVSHMEM protocol engine (work in progress).
#![no_std]
